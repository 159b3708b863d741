-- UPDATE one ledger amount
UPDATE ledger SET amount_cents = amount_cents + 1 WHERE account = 'reserve';
