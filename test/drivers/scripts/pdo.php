<?php
// The driver scenario with PHP's PDO (pdo_mysql over mysqlnd): one line per step.
[, $host, $port, $user, $pass] = $argv;
function out($step, $v) { echo "$step: $v\n"; flush(); }
function err($e) { return ($e->errorInfo[1] ?? "?") . " " . ($e->errorInfo[0] ?? "?"); }

$p = new PDO("mysql:host=$host;port=$port", $user, $pass, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_EMULATE_PREPARES => false]);
out("connect-nodb", $p->query("SELECT 1")->fetchColumn());
$p = new PDO("mysql:host=$host;port=$port;dbname=drv;charset=utf8mb4", $user, $pass,
    [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_EMULATE_PREPARES => false, PDO::MYSQL_ATTR_MULTI_STATEMENTS => true]);
out("connect-db", $p->query("SELECT DATABASE()")->fetchColumn());
$p->exec("INSERT INTO t (id, name) VALUES (10, 'é漢字😀')");
out("utf8mb4", $p->query("SELECT name FROM t WHERE id = 10")->fetchColumn());

$st = $p->prepare("INSERT INTO t (id, name, data, n) VALUES (?, ?, ?, ?)");
$st->execute([1, "a", null, "1.50"]);
$blob = str_repeat("0123456789abcdef", 6400);
$st->bindValue(1, 2, PDO::PARAM_INT); $st->bindValue(2, null, PDO::PARAM_NULL);
$st->bindValue(3, $blob, PDO::PARAM_LOB); $st->bindValue(4, null, PDO::PARAM_NULL);
$st->execute();
out("prepared-reused", $st->rowCount());
$q = $p->prepare("SELECT id, name, LENGTH(data), MD5(data), n FROM t WHERE id IN (?, ?) ORDER BY id");
$q->execute([1, 2]);
foreach ($q->fetchAll(PDO::FETCH_NUM) as $row) { out("prepared-row", json_encode($row)); }

$p->beginTransaction(); $p->exec("INSERT INTO t (id) VALUES (3)"); $p->rollBack();
out("rollback", $p->query("SELECT COUNT(*) FROM t")->fetchColumn());
$p->beginTransaction(); $p->exec("INSERT INTO t (id) VALUES (3)"); $p->commit();
out("commit", $p->query("SELECT COUNT(*) FROM t")->fetchColumn());

$p->setAttribute(PDO::ATTR_EMULATE_PREPARES, true); // several statements cannot be one prepared statement
$s = $p->query("SELECT 1 AS a; SELECT 2 AS b, 'x' AS c");
do { out("multi", json_encode($s->fetchAll(PDO::FETCH_NUM))); } while ($s->nextRowset());
$s = $p->query("CALL two_results()");
do { $rows = $s->fetchAll(PDO::FETCH_NUM); if ($rows) { out("call", json_encode($rows)); } } while ($s->nextRowset());
$p->setAttribute(PDO::ATTR_EMULATE_PREPARES, false);

try { $p->query("SELECT * FROM nope"); } catch (PDOException $e) { out("error-table", err($e)); }
try { $p->exec("INSERT INTO t (id) VALUES (1)"); } catch (PDOException $e) { out("error-dup", err($e)); }

$p->setAttribute(PDO::MYSQL_ATTR_USE_BUFFERED_QUERY, false);
$s = $p->query("SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000");
$n = 0; $sum = 0; while ($row = $s->fetch(PDO::FETCH_NUM)) { $n++; $sum += $row[0]; } $s->closeCursor();
out("large", "$n $sum");
$p->setAttribute(PDO::MYSQL_ATTR_USE_BUFFERED_QUERY, true);

out("cancel-id", $p->query("SELECT CONNECTION_ID()")->fetchColumn());
try { $r = $p->query("SELECT SLEEP(5)")->fetchColumn(); out("cancel", "result $r"); } catch (PDOException $e) { out("cancel", err($e)); }
out("after-cancel", $p->query("SELECT 1")->fetchColumn());
