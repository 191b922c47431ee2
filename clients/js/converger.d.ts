// Type declarations for converger.js (gateway/static/converger.js), the converger-client package.


declare namespace ConvergerClient {
  export type Status = "connecting" | "open" | "joined" | "closed" | "reconnecting" | "error";

  export interface Attachment {
    type?: "image" | "document" | "audio" | "video" | "sticker" | "location" | "contacts" | string;
    contentType?: string;
    name?: string;
    size?: number;
    contentUrl?: string;
    upload_id?: string;
    media_id?: string;
    /** Inbound media downloaded by the gateway: pending, stored or failed (with error). */
    status?: "pending" | "stored" | "failed";
    error?: string | null;
    [key: string]: unknown;
  }

  export interface Activity {
    id: string;
    type: string;
    text?: string | null;
    sender?: string;
    from?: { id?: string; name?: string; role?: string };
    attachments?: Attachment[];
    metadata?: Record<string, unknown>;
    channelData?: Record<string, unknown>;
    seq?: number;
    [key: string]: unknown;
  }

  export interface DeliveryStatus {
    delivery_id: string;
    activity_id: string;
    channel_id: string;
    status: "pending" | "sent" | "delivered" | "read" | "failed" | "skipped";
    [key: string]: unknown;
  }

  /** An inbound file's background download changed state (``attachment_status``). */
  export interface AttachmentStatus {
    activity_id: string;
    conversation_id: string;
    /** The attachment's position in the activity's ``attachments``. */
    index: number;
    status: "pending" | "stored" | "failed";
    /** Why the last attempt failed (a ``pending`` retry, or ``failed``); null once stored. */
    error: string | null;
    attempts: number;
    /** The attachment as the activity now reads: ``contentUrl`` once stored. */
    attachment: Attachment;
  }

  export interface TemplateComponent {
    type: "header" | "body" | "button";
    parameters?: Array<Record<string, unknown>>;
    [key: string]: unknown;
  }

  export interface UploadAnswer {
    id: string;
    upload_id: string;
    attachment: Attachment;
  }

  export interface ClientOptions {
    mode?: "legacy" | "converger";
    apiUrl?: string;
    heartbeatMs?: number;
    WebSocket?: unknown;
    log?: (...args: unknown[]) => void;
  }
}

declare class ConvergerClient {
  static VERSION: string;
  constructor(baseUrl?: string, options?: ConvergerClient.ClientOptions);
  readonly connected: boolean;
  mode: "legacy" | "converger";
  conversationId: string | null;
  onActivity(callback: (activity: ConvergerClient.Activity) => void): this;
  onStatus(callback: (status: ConvergerClient.Status) => void): this;
  onDeliveryStatus(callback: (status: ConvergerClient.DeliveryStatus) => void): this;
  onAttachmentStatus(callback: (status: ConvergerClient.AttachmentStatus) => void): this;
  onTyping(callback: (activity: ConvergerClient.Activity) => void): this;
  onReconnect(callback: (info: { attempt: number; delayMs: number }) => void): this;
  connect(token?: string): Promise<this>;
  disconnect(): void;
  joinConversation(conversationId: string): Promise<unknown>;
  sendMessage(text: string | null, extra?: Partial<ConvergerClient.Activity> & Record<string, unknown>): Promise<unknown>;
  sendTyping(extra?: Record<string, unknown>): Promise<unknown>;
  sendTemplate(name: string, language: string, components?: ConvergerClient.TemplateComponent[],
               extra?: Record<string, unknown>): Promise<unknown>;
  sendAttachment(file: Blob, text?: string, name?: string): Promise<ConvergerClient.UploadAnswer>;
}


export = ConvergerClient;
