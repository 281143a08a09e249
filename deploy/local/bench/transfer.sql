-- pgbench script: the SQL one transfer sends to PostgreSQL, statement for statement, with no
-- network hops between services, no gRPC, no HTTP, no JSON, no authentication and no Kafka:
-- the ceiling for this machine.
--   transfer service: idempotency-key lookup
--   card service:     both cards by number
--   transfer service: record the pending transfer
--   saldo service:    BEGIN; lock both accounts in id order; the posting, balances,
--                     journal lines and balance.changed outbox rows in one statement; COMMIT
--   transfer service: mark it succeeded with its outbox row in one statement
-- Cards come from bench_ceiling.cards (built by bench.sh); :ncards is passed with -D.
\set i random(1, :ncards)
\set j 1 + (:i + random(0, :ncards - 2)) % :ncards
\set amount random(100, 1000)
SELECT gen_random_uuid() AS tid, gen_random_uuid() AS e1, gen_random_uuid() AS e2,
       gen_random_uuid() AS e3, a.card_id AS c1, b.card_id AS c2, a.account_id AS a1,
       b.account_id AS a2, a.user_id AS u1, b.user_id AS u2, a.number AS n1, b.number AS n2
  FROM bench_ceiling.cards a, bench_ceiling.cards b WHERE a.i = :i AND b.i = :j \gset
SELECT id, status FROM transfer_svc.movements WHERE requested_by = ':u1' AND idempotency_key = ':tid';
SELECT id, user_id, number, brand, card_type, currency, expiry_month, expiry_year, created_at,
       updated_at, deleted_at FROM card_svc.cards WHERE number = ':n1';
SELECT id, user_id, number, brand, card_type, currency, expiry_month, expiry_year, created_at,
       updated_at, deleted_at FROM card_svc.cards WHERE number = ':n2';
INSERT INTO transfer_svc.movements (id, requested_by, idempotency_key, fingerprint, user_id,
    card_id, masked_card_number, to_card_id, to_user_id, masked_to_card_number, amount, currency)
VALUES (':tid', ':u1', ':tid', '\x00', ':u1', ':c1', '**** **** **** 0000', ':c2', ':u2',
    '**** **** **** 0000', :amount, 'IDR')
ON CONFLICT (requested_by, idempotency_key) DO NOTHING RETURNING *;
BEGIN;
SELECT id, kind, card_id, owner_user_id, code, currency, balance, is_open
  FROM saldo_svc.accounts WHERE card_id = ANY(ARRAY[':c1', ':c2']::uuid[]) OR code = ANY('{}'::text[])
  ORDER BY id FOR UPDATE;
WITH p AS (
    INSERT INTO saldo_svc.postings (id, kind, status, rejection_reason, debit_ref, credit_ref,
        debit_account_id, credit_account_id, amount, currency, description,
        debit_balance_after, credit_balance_after, created_at)
    SELECT ':tid', 'transfer', 'posted', NULL, 'card:' || ':c1', 'card:' || ':c2', ':a1', ':a2',
        :amount, 'IDR', 'transfer', d.balance - :amount, c.balance + :amount, now()
    FROM saldo_svc.accounts d, saldo_svc.accounts c WHERE d.id = ':a1' AND c.id = ':a2'
    ON CONFLICT (id) DO NOTHING RETURNING id),
balances AS (
    UPDATE saldo_svc.accounts a SET balance = a.balance + d.delta, updated_at = now()
    FROM (VALUES (':a1'::uuid, -:amount::bigint), (':a2'::uuid, :amount::bigint)) AS d(id, delta), p
    WHERE a.id = d.id RETURNING a.id, a.balance),
lines AS (
    INSERT INTO saldo_svc.journal_lines (posting_id, account_id, amount, balance_after, created_at)
    SELECT ':tid', id, CASE WHEN id = ':a1' THEN -:amount ELSE :amount END, balance, now()
    FROM balances RETURNING id),
events AS (
    INSERT INTO saldo_svc.outbox (event_id, topic, partition_key, event_type, payload)
    SELECT u.* FROM p, (VALUES (':e1'::uuid, 'bench', ':a1', 'balance.changed', '{"bench": true}'::jsonb),
        (':e2'::uuid, 'bench', ':a2', 'balance.changed', '{"bench": true}'::jsonb)) AS u
    RETURNING id)
SELECT (SELECT count(*) FROM p), (SELECT count(*) FROM balances), (SELECT count(*) FROM lines)
  FROM (SELECT count(*) FROM events) e, (SELECT pg_notify('outbox_saldo_svc', '')) n;
COMMIT;
WITH done AS (
    UPDATE transfer_svc.movements SET status = 'succeeded', completed_at = now()
    WHERE id = ':tid' AND status = 'pending' RETURNING *),
event AS (
    INSERT INTO transfer_svc.outbox (event_id, topic, partition_key, event_type, payload)
    SELECT ':e3', 'bench', ':tid', 'transfer.succeeded', '{"bench": true}' FROM done RETURNING 1)
SELECT done.*, pg_notify('outbox_transfer_svc', '') IS NULL FROM done;
