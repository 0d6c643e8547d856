"""The driver scenario with PyMySQL or mysqlclient (MySQLdb): one line per step.

usage: python3 python.py pymysql|MySQLdb HOST PORT USER PASSWORD
"""
import hashlib
import json
import sys

driver, host, port, user, password = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
if driver == "pymysql":
    import pymysql as db
    from pymysql.constants import CLIENT
    extra = {"client_flag": CLIENT.MULTI_STATEMENTS}
else:
    import MySQLdb as db
    import MySQLdb.cursors
    from MySQLdb.constants import CLIENT
    extra = {"client_flag": CLIENT.MULTI_STATEMENTS}


def out(step, v):
    print(f"{step}: {v}", flush=True)


def err(e):
    code = e.args[0]
    return f"{code}"


def connect(database=None):
    kw = dict(host=host, port=port, user=user, password=password, charset="utf8mb4", **extra)
    if driver != "pymysql":
        kw["passwd"] = kw.pop("password")
    if database:
        kw["database" if driver == "pymysql" else "db"] = database
    return db.connect(**kw)


c = connect()
cur = c.cursor()
cur.execute("SELECT 1")
out("connect-nodb", cur.fetchone()[0])
c = connect("drv")
cur = c.cursor()
cur.execute("SELECT DATABASE()")
out("connect-db", cur.fetchone()[0])
cur.execute("INSERT INTO t (id, name) VALUES (10, %s)", ("é漢字😀",))
c.commit()
cur.execute("SELECT name FROM t WHERE id = 10")
out("utf8mb4", cur.fetchone()[0])

blob = b"0123456789abcdef" * 6400
cur.executemany("INSERT INTO t (id, name, data, n) VALUES (%s, %s, %s, %s)", [(1, "a", None, "1.50"), (2, None, blob, None)])
out("prepared-reused", cur.rowcount)
c.commit()
cur.execute("SELECT id, name, LENGTH(data), MD5(data), n FROM t WHERE id IN (%s, %s) ORDER BY id", (1, 2))
for row in cur.fetchall():
    out("prepared-row", json.dumps([None if v is None else str(v) for v in row]))

c.begin()
cur.execute("INSERT INTO t (id) VALUES (3)")
c.rollback()
cur.execute("SELECT COUNT(*) FROM t")
out("rollback", cur.fetchone()[0])
c.begin()
cur.execute("INSERT INTO t (id) VALUES (3)")
c.commit()
cur.execute("SELECT COUNT(*) FROM t")
out("commit", cur.fetchone()[0])

cur.execute("SELECT 1 AS a; SELECT 2 AS b, 'x' AS c")
while True:
    out("multi", json.dumps([list(r) for r in cur.fetchall()]))
    if not cur.nextset():
        break
cur.execute("CALL two_results()")
while True:
    rows = cur.fetchall()
    if rows:
        out("call", json.dumps([[str(v) for v in r] for r in rows]))
    if not cur.nextset():
        break

for step, q in (("error-table", "SELECT * FROM nope"), ("error-dup", "INSERT INTO t (id) VALUES (1)")):
    try:
        cur.execute(q)
    except db.MySQLError as e:
        out(step, err(e))

big = c.cursor(db.cursors.SSCursor) if driver == "pymysql" else c.cursor(db.cursors.SSCursor)
big.execute("SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000")
n = s = 0
for row in big:
    n += 1
    s += row[0]
big.close()
out("large", f"{n} {s}")

cur.execute("SELECT CONNECTION_ID()")
out("cancel-id", cur.fetchone()[0])
try:
    cur.execute("SELECT SLEEP(5)")
    out("cancel", f"result {cur.fetchone()[0]}")
except db.MySQLError as e:
    out("cancel", err(e))
cur.execute("SELECT 1")
out("after-cancel", cur.fetchone()[0])
