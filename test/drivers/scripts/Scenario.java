// The driver scenario with MariaDB Connector/J (server-side prepared
// statements, setQueryTimeout): one line per step.
import java.security.MessageDigest;
import java.sql.*;
import java.util.*;

public class Scenario {
    static void out(String step, Object v) { System.out.println(step + ": " + v); System.out.flush(); }
    static String err(SQLException e) { return e.getErrorCode() + " " + e.getSQLState(); }

    static String row(ResultSet rs) throws SQLException {
        List<String> v = new ArrayList<>();
        for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) { String s = rs.getString(i); v.add(s == null ? "null" : "\"" + s + "\""); }
        return "[" + String.join(",", v) + "]";
    }

    public static void main(String[] a) throws Exception {
        String base = "jdbc:mariadb://" + a[0] + ":" + a[1] + "/";
        Properties p = new Properties();
        p.setProperty("user", a[2]); p.setProperty("password", a[3]);
        p.setProperty("useServerPrepStmts", "true"); p.setProperty("allowMultiQueries", "true");
        try (Connection c = DriverManager.getConnection(base, p); Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT 1")) {
            r.next(); out("connect-nodb", r.getInt(1));
        }
        Connection c = DriverManager.getConnection(base + "drv", p);
        Statement s = c.createStatement();
        ResultSet r = s.executeQuery("SELECT DATABASE()"); r.next(); out("connect-db", r.getString(1));
        s.executeUpdate("INSERT INTO t (id, name) VALUES (10, 'é漢字😀')");
        r = s.executeQuery("SELECT name FROM t WHERE id = 10"); r.next(); out("utf8mb4", r.getString(1));

        PreparedStatement ins = c.prepareStatement("INSERT INTO t (id, name, data, n) VALUES (?, ?, ?, ?)");
        int affected = 0;
        ins.setInt(1, 1); ins.setString(2, "a"); ins.setNull(3, Types.BLOB); ins.setBigDecimal(4, new java.math.BigDecimal("1.50"));
        affected += ins.executeUpdate();
        byte[] blob = "0123456789abcdef".repeat(6400).getBytes();
        ins.setInt(1, 2); ins.setNull(2, Types.VARCHAR); ins.setBinaryStream(3, new java.io.ByteArrayInputStream(blob)); ins.setNull(4, Types.DECIMAL);
        affected += ins.executeUpdate();
        out("prepared-reused", affected);
        PreparedStatement q = c.prepareStatement("SELECT id, name, LENGTH(data), MD5(data), n FROM t WHERE id IN (?, ?) ORDER BY id");
        q.setInt(1, 1); q.setInt(2, 2);
        r = q.executeQuery(); while (r.next()) out("prepared-row", row(r));

        c.setAutoCommit(false); s.executeUpdate("INSERT INTO t (id) VALUES (3)"); c.rollback(); c.setAutoCommit(true);
        r = s.executeQuery("SELECT COUNT(*) FROM t"); r.next(); out("rollback", r.getInt(1));
        c.setAutoCommit(false); s.executeUpdate("INSERT INTO t (id) VALUES (3)"); c.commit(); c.setAutoCommit(true);
        r = s.executeQuery("SELECT COUNT(*) FROM t"); r.next(); out("commit", r.getInt(1));

        for (String[] sq : new String[][] {{"multi", "SELECT 1 AS a; SELECT 2 AS b, 'x' AS c"}, {"call", "CALL two_results()"}}) {
            boolean rs = s.execute(sq[1]);
            while (true) {
                if (rs) { StringBuilder b = new StringBuilder("["); ResultSet x = s.getResultSet(); boolean first = true;
                    while (x.next()) { if (!first) b.append(","); b.append(row(x)); first = false; }
                    out(sq[0], b.append("]")); }
                else if (s.getUpdateCount() == -1) break;
                rs = s.getMoreResults();
            }
        }
        try { s.executeQuery("SELECT * FROM nope"); } catch (SQLException e) { out("error-table", err(e)); }
        try { s.executeUpdate("INSERT INTO t (id) VALUES (1)"); } catch (SQLException e) { out("error-dup", err(e)); }

        Statement big = c.createStatement(ResultSet.TYPE_FORWARD_ONLY, ResultSet.CONCUR_READ_ONLY);
        big.setFetchSize(100);
        r = big.executeQuery("SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000");
        long n = 0, sum = 0; while (r.next()) { n++; sum += r.getLong(1); } r.close();
        out("large", n + " " + sum);

        r = s.executeQuery("SELECT CONNECTION_ID()"); r.next(); out("cancel-id", r.getLong(1));
        try { r = s.executeQuery("SELECT SLEEP(5)"); r.next(); out("cancel", "result " + r.getInt(1)); } catch (SQLException e) { out("cancel", err(e)); }
        r = s.executeQuery("SELECT 1"); r.next(); out("after-cancel", r.getInt(1));

        Statement t = c.createStatement();
        t.setQueryTimeout(1);
        long start = System.nanoTime();
        try { t.executeQuery("SELECT SLEEP(5)"); out("query-timeout", "not interrupted"); }
        catch (SQLException e) { out("query-timeout", err(e) + (System.nanoTime() - start < 3_000_000_000L ? " within 3s" : " too slow")); }
        r = s.executeQuery("SELECT 1"); r.next(); out("after-timeout", r.getInt(1));
        start = System.nanoTime();
        try { t.executeUpdate("INSERT INTO t (id) SELECT 100 + SLEEP(5)"); out("write-timeout", "not interrupted"); }
        catch (SQLException e) { out("write-timeout", err(e) + (System.nanoTime() - start < 3_000_000_000L ? " within 3s" : " too slow")); }
        r = s.executeQuery("SELECT COUNT(*) FROM t WHERE id = 100"); r.next(); out("write-timeout-rows", r.getInt(1));
        c.close();
    }
}
