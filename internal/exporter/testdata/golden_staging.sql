-- Objects pg_exporter's default collectors report on, staged before the golden
-- family lists (testdata/golden_pg15_*.txt) are taken or checked: read by
-- internal/exporter's parity test and by test/prometheus_test.go. One statement a line.
CREATE EXTENSION pg_stat_statements;
CREATE ROLE app LOGIN;
CREATE DATABASE app OWNER app;
CREATE TABLE t1 (id int PRIMARY KEY, v text);
INSERT INTO t1 SELECT g, repeat('x', 3000) FROM generate_series(1, 50) g;
GRANT SELECT ON t1 TO app;
CREATE SEQUENCE s1;
SELECT nextval('s1');
GRANT USAGE, SELECT ON SEQUENCE s1 TO app;
CREATE FUNCTION f1() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN 1; END$$;
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
CREATE TABLE parted_default PARTITION OF parted DEFAULT;
CREATE PUBLICATION pub1 FOR TABLE t1;
CREATE SUBSCRIPTION sub1 CONNECTION 'dbname=nowhere' PUBLICATION pub1 WITH (connect = false);
