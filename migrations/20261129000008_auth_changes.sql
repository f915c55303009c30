-- Servers cache who a token or a session belongs to. Every change that can alter that
-- answer (a token revoked or re-dated, a user deactivated, renamed or given another role, a
-- membership, a customer's name) tells every server at commit, on the `webnet_auth`
-- channel, and each empties its cache. Recording a token's use or a sign-in is not such a
-- change: it would empty every cache once a minute per busy script.

-- The trigger's arguments name the columns whose change alone does not matter.
CREATE FUNCTION notify_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE'
       OR (to_jsonb(OLD) - COALESCE(TG_ARGV, '{}'))
          IS DISTINCT FROM (to_jsonb(NEW) - COALESCE(TG_ARGV, '{}')) THEN
        -- PostgreSQL folds a transaction's identical notifications into one.
        PERFORM pg_notify('webnet_auth', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_tokens_auth_changed AFTER UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_auth_changed('last_used_at');
CREATE TRIGGER users_auth_changed AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_auth_changed('last_login_at', 'password_hash');
CREATE TRIGGER user_customers_auth_changed AFTER INSERT OR UPDATE OR DELETE ON user_customers
    FOR EACH ROW EXECUTE FUNCTION notify_auth_changed();
CREATE TRIGGER customers_auth_changed AFTER UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION notify_auth_changed();
