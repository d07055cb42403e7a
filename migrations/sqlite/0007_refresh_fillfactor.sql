-- PostgreSQL's 0007 leaves room on refresh_tokens' pages for the update that marks a
-- replaced token used. SQLite rewrites a row in its b-tree in place and has no such
-- setting: nothing to do here. The file keeps the two trees numbered alike.
SELECT 1;
