package dev.tideline.ecosystem.flink;

import dev.tideline.ecosystem.Streams;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.function.Supplier;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;

/** What the Flink tests share: the connector's client settings and reading a sink stream back. */
final class FlinkJobs {
    static final Duration PATIENCE = Duration.ofSeconds(90);

    private FlinkJobs() {}

    /** The connector's documented AWS settings, pointed at Tideline. */
    static Properties awsProperties(URI endpoint) {
        Properties properties = new Properties();
        properties.setProperty("aws.region", Streams.REGION.id());
        properties.setProperty("aws.endpoint", endpoint.toString());
        properties.setProperty("aws.credentials.provider", "BASIC");
        properties.setProperty("aws.credentials.provider.basic.accesskeyid", "AKIDTIDELINETEST");
        properties.setProperty("aws.credentials.provider.basic.secretkey", "tideline-test-secret");
        return properties;
    }

    /** Every record of every shard of the stream, from TRIM_HORIZON, as UTF-8 strings. */
    static List<String> readAll(KinesisAsyncClient kinesis, String stream) {
        List<String> data = new ArrayList<>();
        for (Shard shard : kinesis.listShards(b -> b.streamName(stream)).join().shards()) {
            String iterator = kinesis.getShardIterator(b -> b.streamName(stream)
                            .shardId(shard.shardId())
                            .shardIteratorType(ShardIteratorType.TRIM_HORIZON))
                    .join()
                    .shardIterator();
            while (iterator != null) {
                String current = iterator;
                GetRecordsResponse page = kinesis.getRecords(b -> b.shardIterator(current)).join();
                page.records().forEach(r -> data.add(r.data().asString(StandardCharsets.UTF_8)));
                if (page.records().isEmpty() || page.millisBehindLatest() == 0) {
                    break;
                }
                iterator = page.nextShardIterator();
            }
        }
        return data;
    }

    /** Polls until the supplier's list has at least {@code count} items; returns it. */
    static <T> List<T> awaitCount(String what, int count, Supplier<List<T>> read) throws InterruptedException {
        long start = System.nanoTime();
        List<T> seen = read.get();
        while (seen.size() < count) {
            if (System.nanoTime() - start > PATIENCE.toNanos()) {
                throw new AssertionError("timed out waiting for " + count + " " + what + "; have " + seen.size() + ": " + seen);
            }
            Thread.sleep(250);
            seen = read.get();
        }
        System.out.printf("%d %s: %d ms%n", count, what, Duration.ofNanos(System.nanoTime() - start).toMillis());
        return seen;
    }
}
