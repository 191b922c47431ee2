"""Activities keep the Direct Line fields the Converger shape has no column for (``from.name``,
``from.role``, ``replyToId``, ``name``, ``value``, ``locale``, ``entities``,
``suggestedActions``, ``attachmentLayout``, ``inputHint``, ``textFormat``, …) in one JSON
object, so both APIs return what a client sent while the compatible shapes stay as they were."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    "ALTER TABLE activities ADD COLUMN extra TEXT NOT NULL DEFAULT '{}'",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
