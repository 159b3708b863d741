-- INSERT one ledger row
INSERT INTO ledger (account, amount_cents, note) VALUES ('ops-vn', 4200, 'Hoàn tiền — thử nghiệm');
