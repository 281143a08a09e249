#!/usr/bin/env bash
# Gives each service its own PostgreSQL role, owning its own schema and reaching nothing else
# (`make run` runs it; a test holds it to that):
#
#   service-roles.sh ADMIN_URL DATABASE PASSWORD_DIR
#
# For every service schema (user_svc, role_svc, ...): a LOGIN role of the same name with a
# password kept in PASSWORD_DIR/<role> (generated once), CONNECT on DATABASE, the schema
# created for (or handed to) the role with everything already in it (tables, their sequences,
# functions: databases from before this script were migrated by the admin role). No role gets
# any right on another schema, and PUBLIC keeps none on `public`. Idempotent.
# Prints `role password` per line, for the caller to build each service's DATABASE_URL.
# A password given as PASSWORD_<ROLE> (PASSWORD_USER_SVC, …) is used instead of the file's
# (Kubernetes and Compose run it as the db-roles job, with the passwords of their secrets).
set -euo pipefail
admin_url="$1" database="$2" password_dir="$3"
SCHEMAS="user_svc role_svc card_svc saldo_svc topup_svc withdraw_svc transfer_svc merchant_svc transaction_svc email_svc"
mkdir -p "$password_dir"
chmod 700 "$password_dir"
db_url="${admin_url%/*}/$database"
sql="REVOKE ALL ON SCHEMA public FROM PUBLIC; REVOKE ALL ON DATABASE $database FROM PUBLIC;"
for role in $SCHEMAS; do
    given="PASSWORD_${role^^}"
    if [ -n "${!given:-}" ]; then
        printf '%s' "${!given}" >"$password_dir/$role"
    fi
    [ -s "$password_dir/$role" ] || head -c 32 /dev/urandom | base64 | tr -d '\n/+=' >"$password_dir/$role"
    password="$(cat "$password_dir/$role")"
    sql+="
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') THEN
    CREATE ROLE $role LOGIN PASSWORD '$password';
  ELSE
    ALTER ROLE $role LOGIN PASSWORD '$password';
  END IF;
END \$\$;
GRANT CONNECT ON DATABASE $database TO $role;
CREATE SCHEMA IF NOT EXISTS $role AUTHORIZATION $role;
ALTER SCHEMA $role OWNER TO $role;
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = '$role' AND c.relkind IN ('r', 'p', 'v', 'm') LOOP
    EXECUTE format('ALTER TABLE $role.%I OWNER TO $role', r.relname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = '$role' LOOP
    EXECUTE format('ALTER FUNCTION %s OWNER TO $role', r.f);
  END LOOP;
END \$\$;"
done
psql "$db_url" -v ON_ERROR_STOP=1 -q -c "$sql" >/dev/null
for role in $SCHEMAS; do
    echo "$role $(cat "$password_dir/$role")"
done
