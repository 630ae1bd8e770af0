package dev.tideline.ecosystem.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.sun.management.OperatingSystemMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Flink's side of {@code tideline-bench sql-tumble}, run by {@code bench.sh} (skipped otherwise):
 * the same TUMBLE count/sum per key over the same JSON lines ({@code tideline-bench sql-tumble
 * --write-jsonl}), read by the filesystem connector on an embedded MiniCluster. Each run is timed
 * from {@code executeSql} (planning, MiniCluster start, job submission included) to the last
 * window's row collected; the bounded file source ends with the final watermark, which closes
 * every window. Runs repeat in one JVM, so later runs have a warm JIT. The JVM's CPU time over a
 * run (every thread: the job, the MiniCluster, JIT and GC) is reported per record, as
 * tideline-bench reports the server's.
 */
class TumbleBench {
    private static final String CLOSING_KEY = "end";

    @Test
    void tumbleCountAndSumPerKey() throws Exception {
        String input = System.getenv("TIDELINE_BENCH_JSONL");
        Assumptions.assumeTrue(input != null, "a benchmark: run tests/ecosystem/flink/bench.sh");
        long records = Long.parseLong(System.getenv().getOrDefault("TIDELINE_BENCH_RECORDS", "1000000"));
        int runs = Integer.parseInt(System.getenv().getOrDefault("TIDELINE_BENCH_RUNS", "3"));
        String parallelism = System.getenv().getOrDefault("TIDELINE_BENCH_PARALLELISM", "2");
        Path report = Path.of(System.getenv().getOrDefault("TIDELINE_BENCH_REPORT", "target/tumble-bench.txt"));
        Files.deleteIfExists(report);
        OperatingSystemMXBean os = (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        for (int run = 1; run <= runs; run++) {
            TableEnvironment tables = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
            tables.getConfig().set("parallelism.default", parallelism);
            tables.executeSql("CREATE TABLE src (id STRING, v BIGINT, ts TIMESTAMP(3), "
                    + "WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
                    + "WITH ('connector' = 'filesystem', 'path' = 'file://" + Path.of(input).toAbsolutePath()
                    + "', 'format' = 'json')");
            long started = System.nanoTime();
            long cpuStarted = os.getProcessCpuTime();
            TableResult result = tables.executeSql("SELECT window_start, window_end, id, COUNT(*) AS n, SUM(v) AS total "
                    + "FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' SECOND)) "
                    + "GROUP BY window_start, window_end, id");
            long rows = 0;
            long count = 0;
            long total = 0;
            try (CloseableIterator<Row> collected = result.collect()) {
                while (collected.hasNext()) {
                    Row row = collected.next();
                    // The closing record's window: Tideline never closes it, so it is left out here too.
                    if (CLOSING_KEY.equals(row.getField("id"))) {
                        continue;
                    }
                    rows++;
                    count += (Long) row.getField("n");
                    total += (Long) row.getField("total");
                }
            }
            double secs = (System.nanoTime() - started) / 1e9;
            double cpuSecs = (os.getProcessCpuTime() - cpuStarted) / 1e9;
            String line = String.format(
                    "flink run %d (parallelism %s): %d records in %.3f s = %.0f records/s, JVM CPU %.2f s (%.3f µs/record); "
                            + "%d rows, COUNT sum %d, SUM sum %d; load average %s%n",
                    run, parallelism, count, secs, count / secs, cpuSecs, cpuSecs * 1e6 / count, rows, count, total,
                    String.join(" ", Arrays.copyOf(Files.readString(Path.of("/proc/loadavg")).split(" "), 3)));
            System.err.print(line);
            Files.writeString(report, line, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            assertEquals(records, count, "every record counted once");
        }
    }
}
