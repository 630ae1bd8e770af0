package dev.tideline.ecosystem;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.util.concurrent.ListenableFuture;
import java.math.BigInteger;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.SdkHttpConfigurationOption;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;
import software.amazon.awssdk.utils.AttributeMap;
import software.amazon.kinesis.producer.KinesisProducer;
import software.amazon.kinesis.producer.KinesisProducerConfiguration;
import software.amazon.kinesis.producer.UserRecordResult;
import software.amazon.kinesis.retrieval.AggregatorUtil;
import software.amazon.kinesis.retrieval.KinesisClientRecord;

/**
 * The KPL with aggregation on writes 10,000 user records to a 4-shard stream through tideline's TLS
 * listener (self-signed certificate, {@code VerifyCertificate=false}; the KPL's endpoint takes a
 * host and a port and always speaks HTTPS). Reading every shard back and de-aggregating with the
 * KCL's {@link AggregatorUtil} must give every user record once, in the aggregate the KPL was
 * acknowledged for, each partition key's aggregates in sequence-number order.
 */
class KplAggregationTest {
    private static final int USER_RECORDS = 10_000;
    private static final int KEYS = 100;
    private static final StaticCredentialsProvider CREDENTIALS =
            StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDTIDELINE", "tideline-secret"));

    @Test
    void aggregatedRecordsArriveWholeAndInOrderPerKey(@TempDir Path kplTemp) throws Exception {
        try (TidelineServer server = TidelineServer.start("--tls-self-signed");
                KinesisClient kinesis = kinesis(server.endpoint())) {
            URI endpoint = server.endpoint();
            assertEquals("https", endpoint.getScheme(), "the KPL needs the TLS listener");
            String stream = "kpl-aggregated";
            kinesis.createStream(r -> r.streamName(stream).shardCount(4));
            kinesis.waiter().waitUntilStreamExists(r -> r.streamName(stream));

            KinesisProducer producer = new KinesisProducer(new KinesisProducerConfiguration()
                    .setRegion("us-east-1")
                    .setCredentialsProvider(CREDENTIALS)
                    .setKinesisEndpoint(endpoint.getHost())
                    .setKinesisPort(endpoint.getPort())
                    .setVerifyCertificate(false)
                    .setAggregationEnabled(true)
                    .setMetricsLevel("none")
                    .setLogLevel("warning")
                    .setRecordMaxBufferedTime(200)
                    .setTempDirectory(kplTemp.toString()));
            // What the KPL was told for each user record: the sequence number of the Kinesis
            // record (aggregate) it went into.
            Map<String, List<String>> acknowledged = new HashMap<>();
            try {
                List<ListenableFuture<UserRecordResult>> results = new ArrayList<>();
                for (int i = 0; i < USER_RECORDS; i++) {
                    String key = "key-" + (i % KEYS);
                    results.add(producer.addUserRecord(stream, key,
                            StandardCharsets.UTF_8.encode(key + ":" + (i / KEYS))));
                }
                producer.flushSync();
                for (int i = 0; i < USER_RECORDS; i++) {
                    UserRecordResult outcome = results.get(i).get(60, TimeUnit.SECONDS);
                    assertTrue(outcome.isSuccessful(), () -> "a user record failed: " + outcome.getAttempts());
                    acknowledged.computeIfAbsent("key-" + (i % KEYS), k -> new ArrayList<>())
                            .add(outcome.getSequenceNumber());
                }
            } finally {
                producer.destroy();
            }

            int kinesisRecords = 0;
            // Per key, in read order: the user record's index and its aggregate's sequence number.
            Map<String, List<Integer>> indexes = new HashMap<>();
            Map<String, List<String>> containers = new HashMap<>();
            for (Shard shard : kinesis.listShards(r -> r.streamName(stream)).shards()) {
                List<KinesisClientRecord> stored = readShard(kinesis, stream, shard.shardId());
                kinesisRecords += stored.size();
                for (KinesisClientRecord record : new AggregatorUtil().deaggregate(stored)) {
                    String[] keyAndIndex = StandardCharsets.UTF_8.decode(record.data()).toString().split(":");
                    assertEquals(keyAndIndex[0], record.partitionKey());
                    indexes.computeIfAbsent(keyAndIndex[0], k -> new ArrayList<>()).add(Integer.parseInt(keyAndIndex[1]));
                    containers.computeIfAbsent(keyAndIndex[0], k -> new ArrayList<>()).add(record.sequenceNumber());
                }
            }
            assertTrue(kinesisRecords < USER_RECORDS / 10,
                    "aggregation must pack user records: " + kinesisRecords + " Kinesis records");
            assertEquals(KEYS, indexes.size());
            for (String key : indexes.keySet()) {
                List<Integer> read = indexes.get(key);
                // Every user record once.
                assertEquals(USER_RECORDS / KEYS, read.size(), "records of " + key);
                assertEquals(USER_RECORDS / KEYS, Set.copyOf(read).size(), "records of " + key + ": " + read);
                // Each user record comes back from the very aggregate the KPL was acknowledged for.
                List<String> acknowledgedInReadOrder = new ArrayList<>();
                for (int index : read) {
                    acknowledgedInReadOrder.add(acknowledged.get(key).get(index));
                }
                assertEquals(acknowledgedInReadOrder, containers.get(key), "aggregates of " + key);
                // A key lives on one shard, whose aggregates come back in sequence-number order.
                // That is the per-key order the KPL gives: it does not keep the order of records
                // added faster than its native process takes them, neither inside an aggregate
                // nor across aggregates sent at once (amazon-kinesis-producer#135); the sequence
                // numbers it was acknowledged show that order, and reads must keep it.
                List<String> sorted = new ArrayList<>(containers.get(key));
                sorted.sort(Comparator.comparing(BigInteger::new));
                assertEquals(sorted, containers.get(key), "aggregates of " + key + " in sequence-number order");
            }
        }
    }

    private static KinesisClient kinesis(URI endpoint) {
        return KinesisClient.builder()
                .endpointOverride(endpoint)
                .region(Region.US_EAST_1)
                .credentialsProvider(CREDENTIALS)
                .httpClient(ApacheHttpClient.builder().buildWithDefaults(AttributeMap.builder()
                        .put(SdkHttpConfigurationOption.TRUST_ALL_CERTIFICATES, true).build()))
                .build();
    }

    /** Every record of a shard, from TRIM_HORIZON to the tip. */
    private static List<KinesisClientRecord> readShard(KinesisClient kinesis, String stream, String shardId) {
        String iterator = kinesis.getShardIterator(r -> r.streamName(stream).shardId(shardId)
                .shardIteratorType(ShardIteratorType.TRIM_HORIZON)).shardIterator();
        List<KinesisClientRecord> records = new ArrayList<>();
        for (int page = 0; page < 1000 && iterator != null; page++) {
            String current = iterator;
            GetRecordsResponse response = kinesis.getRecords(r -> r.shardIterator(current));
            response.records().forEach(record -> records.add(KinesisClientRecord.fromRecord(record)));
            if (response.records().isEmpty() && response.millisBehindLatest() == 0) {
                break;
            }
            iterator = response.nextShardIterator();
        }
        return records;
    }
}
