-- A card trashed by someone other than its owner (an admin) stays trashed until an admin
-- restores it: the owner cannot undo that decision.
ALTER TABLE cards ADD COLUMN trashed_by_admin BOOLEAN NOT NULL DEFAULT FALSE;
