<?php
// The driver scenario with PHP's mysqli (mysqlnd): one line per step.
mysqli_report(MYSQLI_REPORT_OFF);
[, $host, $port, $user, $pass] = $argv;
function out($step, $v) { echo "$step: $v\n"; flush(); }
function err($m) { return $m->errno . " " . $m->sqlstate; }

$m = new mysqli($host, $user, $pass, null, (int)$port);
out("connect-nodb", $m->query("SELECT 1")->fetch_row()[0]);
$m->select_db("drv");
$m->set_charset("utf8mb4");
out("connect-db", $m->query("SELECT DATABASE()")->fetch_row()[0]);
$m->query("INSERT INTO t (id, name) VALUES (10, 'é漢字😀')");
out("utf8mb4", $m->query("SELECT name, CHAR_LENGTH(name) FROM t WHERE id = 10")->fetch_row()[0]);

$st = $m->prepare("INSERT INTO t (id, name, data, n) VALUES (?, ?, ?, ?)");
foreach ([[1, "a", null, "1.50"], [2, null, null, null]] as $r) {
    [$id, $name, $data, $n] = $r;
    $st->bind_param("isbs", $id, $name, $data, $n);
    if ($id == 2) { foreach (str_split(str_repeat("0123456789abcdef", 6400), 8192) as $c) { $st->send_long_data(2, $c); } }
    $st->execute();
}
out("prepared-reused", $st->affected_rows);
$st->close();
$q = $m->prepare("SELECT id, name, LENGTH(data), MD5(data), n FROM t WHERE id IN (?, ?) ORDER BY id");
$a = 1; $b = 2;
$q->bind_param("ii", $a, $b);
$q->execute();
$res = $q->get_result();
while ($row = $res->fetch_row()) { out("prepared-row", json_encode($row)); }
$q->close();

$m->begin_transaction(); $m->query("INSERT INTO t (id) VALUES (3)"); $m->rollback();
out("rollback", $m->query("SELECT COUNT(*) FROM t")->fetch_row()[0]);
$m->begin_transaction(); $m->query("INSERT INTO t (id) VALUES (3)"); $m->query("UPDATE t SET n = n + 1 WHERE id = 1");
out("update-info", $m->info);
$m->commit();
out("commit", $m->query("SELECT COUNT(*) FROM t")->fetch_row()[0]);

$m->multi_query("SELECT 1 AS a; SELECT 2 AS b, 'x' AS c");
do { if ($r = $m->store_result()) { out("multi", json_encode($r->fetch_all())); $r->free(); } } while ($m->more_results() && $m->next_result());
$m->multi_query("CALL two_results()");
do { if ($r = $m->store_result()) { out("call", json_encode($r->fetch_all())); $r->free(); } } while ($m->more_results() && $m->next_result());

$m->query("SELECT * FROM nope"); out("error-table", err($m));
$m->query("INSERT INTO t (id) VALUES (1)"); out("error-dup", err($m));

$r = $m->query("SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000", MYSQLI_USE_RESULT);
$n = 0; $sum = 0; while ($row = $r->fetch_row()) { $n++; $sum += $row[0]; } $r->free();
out("large", "$n $sum");

out("cancel-id", $m->query("SELECT CONNECTION_ID()")->fetch_row()[0]);
$r = $m->query("SELECT SLEEP(5)");
out("cancel", $r === false ? err($m) : "result " . $r->fetch_row()[0]);
out("after-cancel", $m->query("SELECT 1")->fetch_row()[0]);
