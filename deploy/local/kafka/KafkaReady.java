// Readiness probe for deploy/local/kafka.sh: exits 0 once the broker at the given bootstrap
// address answers a metadata (DescribeCluster) request listing at least one live broker,
// 1 when the deadline passes first. Uses only kafka-clients, which the jar cache already has.
//
//   java -cp "$LIB/*:$CLASSES" KafkaReady [bootstrap=127.0.0.1:9092] [timeoutMs=60000]
import java.util.Collection;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.common.Node;

public final class KafkaReady {
    public static void main(String[] args) throws Exception {
        String bootstrap = args.length > 0 ? args[0] : "127.0.0.1:9092";
        long timeoutMs = args.length > 1 ? Long.parseLong(args[1]) : 60_000L;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);

        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "citybase-kafka-ready");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "4000");
        p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "200");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "200");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");

        String last = "no answer";
        try (Admin admin = Admin.create(p)) {
            while (System.nanoTime() < deadline) {
                try {
                    DescribeClusterResult r = admin.describeCluster(new DescribeClusterOptions().timeoutMs(4000));
                    Collection<Node> nodes = r.nodes().get(5, TimeUnit.SECONDS);
                    String clusterId = r.clusterId().get(5, TimeUnit.SECONDS);
                    Node controller = r.controller().get(5, TimeUnit.SECONDS);
                    if (!nodes.isEmpty()) {
                        System.out.println("ready cluster.id=" + clusterId + " brokers=" + nodes.size()
                                + " controller=" + (controller == null ? "?" : controller.idString()));
                        return;
                    }
                    last = "metadata lists no live broker yet";
                } catch (Exception e) {
                    last = e.getCause() != null ? e.getCause().toString() : e.toString();
                }
                Thread.sleep(300);
            }
        }
        System.err.println("Kafka at " + bootstrap + " not ready after " + timeoutMs + " ms: " + last);
        System.exit(1);
    }
}
