-- A refresh token names the token it replaced, so that a rotation is one INSERT (atomic on
-- its own, no transaction around several statements). At most one successor per token: of
-- two rotations of one token that race, the second breaks this index and counts as reuse.
ALTER TABLE refresh_tokens ADD COLUMN parent_hash TEXT;
CREATE UNIQUE INDEX refresh_tokens_parent_idx ON refresh_tokens (parent_hash);

-- The replaced token is marked used by the same statement that stores its successor.
CREATE FUNCTION refresh_tokens_mark_parent_used() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE refresh_tokens SET used_at = NEW.created_at WHERE token_hash = NEW.parent_hash;
    RETURN NULL;
END
$$;
CREATE TRIGGER refresh_tokens_mark_parent_used AFTER INSERT ON refresh_tokens
    FOR EACH ROW WHEN (NEW.parent_hash IS NOT NULL)
    EXECUTE FUNCTION refresh_tokens_mark_parent_used();
