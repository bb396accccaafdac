import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

/**
 * Drives pgwarden with pgJDBC (Debian's libpostgresql-jdbc-java) the way a Java agent would and
 * prints one line per step, which test/proxy-jdbc.test.ts compares with what it expects.
 * Run: java -cp /usr/share/java/postgresql.jar JdbcProbe.java <jdbc-url> <user> <password>
 */
public class JdbcProbe {
  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.setProperty("user", args[1]);
    p.setProperty("password", args[2]);
    try (Connection c = DriverManager.getConnection(args[0], p)) {
      try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT count(*) FROM items")) {
        r.next();
        System.out.println("count " + r.getInt(1));
      }
      try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SHOW application_name")) {
        r.next();
        System.out.println("application_name " + r.getString(1));
      }
      // pgJDBC switches to a named server-side statement after prepareThreshold (5) executions.
      try (PreparedStatement ps = c.prepareStatement("SELECT name FROM items WHERE id = ?")) {
        StringBuilder names = new StringBuilder();
        for (int i = 1; i <= 8; i++) {
          ps.setInt(1, i);
          try (ResultSet r = ps.executeQuery()) {
            r.next();
            names.append(i == 1 ? "" : ",").append(r.getString(1));
          }
        }
        System.out.println("prepared " + names);
      }
      try (Statement s = c.createStatement()) {
        s.executeQuery("SELECT secret FROM secrets");
        System.out.println("denied no");
      } catch (SQLException e) {
        System.out.println("denied " + e.getSQLState());
      }
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.executeQuery("SELECT 1 FROM items LIMIT 1");
        try {
          s.executeQuery("SELECT secret FROM secrets");
        } catch (SQLException e) {
          System.out.println("in transaction " + e.getSQLState());
        }
        try {
          s.executeQuery("SELECT 1 FROM items LIMIT 1");
        } catch (SQLException e) {
          System.out.println("after denial " + e.getSQLState());
        }
      }
      c.rollback();
      c.setAutoCommit(true);
      try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT max(id) FROM items")) {
        r.next();
        System.out.println("after rollback " + r.getInt(1));
      }
    }
  }
}
