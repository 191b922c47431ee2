// A real OpenID Connect provider (the oidc-provider package) on loopback, for the admin panel's
// single sign-on test (tests/integration/rbac/test_sso_browser.py). Its built-in development
// sign-in pages take any login name as the account id; each account's "groups" claim comes from
// the ACCOUNTS table below. Prints "ready <issuer>" once it listens.
//
// node oidc_provider.mjs <port> <client_id> <client_secret> <redirect_uri,…> <post_logout_uri>
import Provider from "oidc-provider";

const [port, clientId, clientSecret, redirectUri, postLogoutUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const ACCOUNTS = {
  alice: ["converger-ops"],
  agnes: ["auditors"],
  bob: ["marketing"],
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUri.split(","),
    post_logout_redirect_uris: [postLogoutUri],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"],
            groups: ["groups"] },
  scopes: ["openid", "email", "profile", "groups"],
  conformIdTokenClaims: false,  // the scopes' claims in the ID token itself
  pkce: { required: () => true },
  cookies: { keys: ["converger-test-cookie-key-0123456789"] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@idp.example`, email_verified: true,
                 name: id[0].toUpperCase() + id.slice(1), groups: ACCOUNTS[id] || [] };
      },
    };
  },
});
provider.on("server_error", (ctx, err) => console.error("server_error", err));
provider.listen(Number(port), "127.0.0.1", () => console.log(`ready ${issuer}`));
