# The driver scenario with Ruby mysql2 (prepare = server-side prepared
# statements): one line per step.
require "mysql2"
require "json"
$stdout.sync = true
host, port, user, pass = ARGV
def out(step, v) puts "#{step}: #{v}" end
def err(e) "#{e.error_number} #{e.sql_state}" end

base = { host: host, port: port.to_i, username: user, password: pass, encoding: "utf8mb4" }
c = Mysql2::Client.new(**base)
out("connect-nodb", c.query("SELECT 1 AS v").first["v"])
c = Mysql2::Client.new(**base, database: "drv", flags: Mysql2::Client::MULTI_STATEMENTS)
out("connect-db", c.query("SELECT DATABASE() AS d").first["d"])
c.query("INSERT INTO t (id, name) VALUES (10, 'é漢字😀')")
out("utf8mb4", c.query("SELECT name FROM t WHERE id = 10").first["name"])

st = c.prepare("INSERT INTO t (id, name, data, n) VALUES (?, ?, ?, ?)")
st.execute(1, "a", nil, "1.50")
a1 = st.affected_rows
st.execute(2, nil, "0123456789abcdef" * 6400, nil)
out("prepared-reused", a1 + st.affected_rows)
q = c.prepare("SELECT id, name, LENGTH(data) AS l, MD5(data) AS h, n FROM t WHERE id IN (?, ?) ORDER BY id")
q.execute(1, 2).each { |r| out("prepared-row", JSON.generate(r.values.map { |v| v.nil? ? nil : v.to_s })) }

c.query("BEGIN"); c.query("INSERT INTO t (id) VALUES (3)"); c.query("ROLLBACK")
out("rollback", c.query("SELECT COUNT(*) AS n FROM t").first["n"])
c.query("BEGIN"); c.query("INSERT INTO t (id) VALUES (3)"); c.query("COMMIT")
out("commit", c.query("SELECT COUNT(*) AS n FROM t").first["n"])

[["multi", "SELECT 1 AS a; SELECT 2 AS b, 'x' AS c"], ["call", "CALL two_results()"]].each do |step, sql|
  rs = c.query(sql)
  loop do
    out(step, JSON.generate(rs.map { |r| r.values.map(&:to_s) })) if rs && rs.count > 0
    break unless c.next_result
    rs = c.store_result
  end
end

[["error-table", "SELECT * FROM nope"], ["error-dup", "INSERT INTO t (id) VALUES (1)"]].each do |step, sql|
  begin
    c.query(sql)
  rescue Mysql2::Error => e
    out(step, err(e))
  end
end

n = 0; sum = 0
c.query("SELECT seq, REPEAT('x', 100) AS x FROM seq_1_to_20000", stream: true, cache_rows: false).each { |r| n += 1; sum += r["seq"] }
out("large", "#{n} #{sum}")

out("cancel-id", c.query("SELECT CONNECTION_ID() AS id").first["id"])
begin
  out("cancel", "result #{c.query('SELECT SLEEP(5) AS s').first['s']}")
rescue Mysql2::Error => e
  out("cancel", err(e))
end
out("after-cancel", c.query("SELECT 1 AS v").first["v"])
