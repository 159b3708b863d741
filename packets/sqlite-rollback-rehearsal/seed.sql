-- The seed of ledger.db, a throwaway SQLite database for the rollback rehearsal:
--   sqlite3 ledger.db < seed.sql
CREATE TABLE ledger (id INTEGER PRIMARY KEY, account TEXT NOT NULL, amount_cents INTEGER NOT NULL, note TEXT);
INSERT INTO ledger (account, amount_cents, note) VALUES
  ('ops-vn', 125000, 'Phí vận hành — tháng 6'),
  ('ops-eu', 98050, 'Operating fee – June'),
  ('reserve', 500000, 'Reserve “do not touch”');
