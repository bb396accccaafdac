import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

/**
 * Reads the schema through pgJDBC's DatabaseMetaData, as Java agent frameworks do to describe a
 * database to a model, and prints one line per call, which test/policy-catalog-functions.test.ts
 * compares with what it expects.
 * Run: java -cp /usr/share/java/postgresql.jar JdbcMetadataProbe.java <jdbc-url> <user> <password>
 */
public class JdbcMetadataProbe {
  interface Call {
    ResultSet run(DatabaseMetaData m) throws SQLException;
  }

  static void print(DatabaseMetaData m, String what, String column, Call call) {
    List<String> values = new ArrayList<>();
    try (ResultSet r = call.run(m)) {
      while (r.next()) values.add(r.getString(column));
      System.out.println(what + " " + String.join(",", values));
    } catch (SQLException e) {
      System.out.println(what + " failed " + e.getSQLState() + " " + e.getMessage().split("\n")[0]);
    }
  }

  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.setProperty("user", args[1]);
    p.setProperty("password", args[2]);
    try (Connection c = DriverManager.getConnection(args[0], p)) {
      DatabaseMetaData m = c.getMetaData();
      print(m, "tables", "TABLE_NAME", x -> x.getTables(null, "public", "%", new String[] {"TABLE"}));
      print(m, "columns", "COLUMN_NAME", x -> x.getColumns(null, "public", "customers", "%"));
      print(m, "primary key", "COLUMN_NAME", x -> x.getPrimaryKeys(null, "public", "orders"));
      print(m, "imported keys", "PKTABLE_NAME", x -> x.getImportedKeys(null, "public", "orders"));
      print(m, "indexes", "INDEX_NAME", x -> x.getIndexInfo(null, "public", "customers", false, false));
    }
  }
}
