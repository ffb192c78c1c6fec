// Curator's EnsembleTracker against a running ensemble: a client given
// one server learns the others from /zookeeper/config, and its connection
// string follows a reconfig that removes a server and adds it back.
// Prints one line per step; tests/python/test_reconfig.py runs it against
// ZooKeeper and Paddock and compares the lines.
//
// Usage: EnsembleTrackerCheck <host:port> <user:password of super> <id to remove>

import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;

public class EnsembleTrackerCheck {
    static TreeSet<String> hosts(CuratorFramework client) {
        return new TreeSet<>(Arrays.asList(client.getZookeeperClient().getCurrentConnectionString().split(",")));
    }

    static TreeSet<String> waitFor(CuratorFramework client, String what, Predicate<TreeSet<String>> done)
            throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < end) {
            TreeSet<String> now = hosts(client);
            if (done.test(now)) {
                return now;
            }
            Thread.sleep(50);
        }
        throw new IllegalStateException("timed out waiting for " + what + "; connection string " + hosts(client));
    }

    public static void main(String[] args) throws Exception {
        String first = args[0];
        String victim = args[2];
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(first)
                .retryPolicy(new RetryOneTime(200))
                .authorization("digest", args[1].getBytes("UTF-8"))
                .ensembleTracker(true)
                .build();
        client.start();
        try {
            client.blockUntilConnected(20, TimeUnit.SECONDS);
            TreeSet<String> all = waitFor(client, "every server", h -> h.size() == 3);
            System.out.println("tracking " + all.size() + " servers, the first among them: " + all.contains(first));

            String config = new String(client.getConfig().forEnsemble(), "UTF-8");
            String spec = null;
            for (String line : config.split("\n")) {
                if (line.startsWith("server." + victim + "=")) {
                    spec = line;
                }
            }
            String victimHost = null;
            for (String line : config.split("\n")) {
                if (line.equals(spec)) {
                    victimHost = line.substring(line.lastIndexOf(';') + 1);
                }
            }
            final String gone = victimHost;
            client.reconfig().leaving(victim).forEnsemble();
            TreeSet<String> fewer = waitFor(client, "the removal", h -> h.size() == 2 && !h.contains(gone));
            System.out.println("after removing one: " + fewer.size() + " servers, without it: " + !fewer.contains(gone));

            List<String> joining = Arrays.asList(spec);
            client.reconfig().joining(joining).forEnsemble();
            TreeSet<String> again = waitFor(client, "the return", h -> h.size() == 3 && h.contains(gone));
            System.out.println("after adding it back: " + again.size() + " servers, with it: " + again.contains(gone));
        } finally {
            client.close();
        }
    }
}
