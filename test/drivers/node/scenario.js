// The driver scenario with node mysql2 (execute = server-side prepared
// statements): one line per step.
const mysql = require("mysql2/promise");
const crypto = require("crypto");
const [host, port, user, password] = process.argv.slice(2);
const out = (step, v) => process.stdout.write(`${step}: ${v}\n`);
const err = (e) => `${e.errno} ${e.sqlState}`;

(async () => {
  const base = { host, port: Number(port), user, password, charset: "utf8mb4", supportBigNumbers: true, bigNumberStrings: true };
  let c = await mysql.createConnection(base);
  out("connect-nodb", (await c.query("SELECT 1 AS v"))[0][0].v);
  await c.end();
  c = await mysql.createConnection({ ...base, database: "drv", multipleStatements: true });
  out("connect-db", (await c.query("SELECT DATABASE() AS d"))[0][0].d);
  await c.query("INSERT INTO t (id, name) VALUES (10, ?)", ["é漢字😀"]);
  out("utf8mb4", (await c.query("SELECT name FROM t WHERE id = 10"))[0][0].name);

  const blob = Buffer.from("0123456789abcdef".repeat(6400));
  let affected = 0;
  for (const r of [[1, "a", null, "1.50"], [2, null, blob, null]]) {
    affected += (await c.execute("INSERT INTO t (id, name, data, n) VALUES (?, ?, ?, ?)", r))[0].affectedRows;
  }
  out("prepared-reused", affected);
  const [rows] = await c.execute("SELECT id, name, LENGTH(data) AS l, MD5(data) AS h, n FROM t WHERE id IN (?, ?) ORDER BY id", [1, 2]);
  for (const r of rows) out("prepared-row", JSON.stringify([r.id, r.name, r.l, r.h, r.n].map((v) => (v === null ? null : String(v)))));

  await c.beginTransaction(); await c.query("INSERT INTO t (id) VALUES (3)"); await c.rollback();
  out("rollback", (await c.query("SELECT COUNT(*) AS n FROM t"))[0][0].n);
  await c.beginTransaction(); await c.query("INSERT INTO t (id) VALUES (3)"); await c.commit();
  out("commit", (await c.query("SELECT COUNT(*) AS n FROM t"))[0][0].n);

  const [multi] = await c.query("SELECT 1 AS a; SELECT 2 AS b, 'x' AS c");
  for (const rs of multi) out("multi", JSON.stringify(rs.map((r) => Object.values(r))));
  const [call] = await c.query("CALL two_results()");
  for (const rs of call) if (Array.isArray(rs) && rs.length) out("call", JSON.stringify(rs.map((r) => Object.values(r).map(String))));

  for (const [step, q] of [["error-table", "SELECT * FROM nope"], ["error-dup", "INSERT INTO t (id) VALUES (1)"]]) {
    try { await c.query(q); } catch (e) { out(step, err(e)); }
  }

  let n = 0, sum = 0;
  await new Promise((resolve, reject) => {
    c.connection.query("SELECT seq, REPEAT('x', 100) AS x FROM seq_1_to_20000").stream()
      .on("data", (r) => { n++; sum += Number(r.seq); }).on("end", resolve).on("error", reject);
  });
  out("large", `${n} ${sum}`);

  out("cancel-id", (await c.query("SELECT CONNECTION_ID() AS id"))[0][0].id);
  try { const [r] = await c.query("SELECT SLEEP(5) AS s"); out("cancel", `result ${r[0].s}`); } catch (e) { out("cancel", err(e)); }
  out("after-cancel", (await c.query("SELECT 1 AS v"))[0][0].v);
  await c.end();
})().catch((e) => { console.error(e); process.exit(1); });
