package dev.tideline.ecosystem;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.Consumer;
import software.amazon.awssdk.services.kinesis.model.ConsumerStatus;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.Record;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;

/**
 * Every Kinesis data-plane call through the AWS SDK for Java v2 as configured out of the box: the
 * sync client speaks CBOR ({@code application/x-amz-cbor-1.1}), SubscribeToShard goes through the
 * Netty client over HTTP/2: h2c (prior knowledge, which the SDK's Netty client speaks to an http://
 * endpoint) on the plain listener, ALPN h2 on the TLS one.
 */
class KinesisDataPlaneTest {
    private static final String CBOR = "application/x-amz-cbor-1.1";
    private static final String JSON = "application/x-amz-json-1.1";

    @Test
    void everyDataPlaneCallOverPlainHttp() throws Exception {
        try (TidelineServer server = TidelineServer.start()) {
            assertTrue(server.endpoint().getScheme().equals("http"), server.endpoint().toString());
            roundTrip(server.endpoint());
        }
    }

    @Test
    void everyDataPlaneCallOverTls() throws Exception {
        try (TidelineServer server = TidelineServer.start("--tls-self-signed")) {
            assertTrue(server.endpoint().getScheme().equals("https"), server.endpoint().toString());
            roundTrip(server.endpoint());
        }
    }

    private static void roundTrip(URI endpoint) throws Exception {
        Clients.ContentTypes syncTypes = new Clients.ContentTypes();
        Clients.ContentTypes asyncTypes = new Clients.ContentTypes();
        Clients.Http2Seen http2 = new Clients.Http2Seen();
        try (KinesisClient kinesis = Clients.kinesis(endpoint, syncTypes);
                KinesisAsyncClient async = Clients.kinesisAsync(endpoint, asyncTypes, http2)) {
            String stream = "java-sdk";
            kinesis.createStream(r -> r.streamName(stream).shardCount(2));
            kinesis.waiter().waitUntilStreamExists(r -> r.streamName(stream));
            String streamArn = kinesis.describeStreamSummary(r -> r.streamName(stream))
                    .streamDescriptionSummary().streamARN();

            List<Shard> shards = kinesis.listShards(r -> r.streamName(stream)).shards();
            assertEquals(List.of("shardId-000000000000", "shardId-000000000001"),
                    shards.stream().map(Shard::shardId).toList());
            // The first shard's range starts at 0: this hash key routes there.
            String firstShard = shards.get(0).shardId();

            Map<String, List<String>> written = new LinkedHashMap<>();
            PutRecordResponse first = kinesis.putRecord(r -> r.streamName(stream).partitionKey("k")
                    .explicitHashKey("0").data(SdkBytes.fromUtf8String("first")));
            assertEquals(firstShard, first.shardId());
            written.computeIfAbsent(first.shardId(), k -> new ArrayList<>()).add("first");
            PutRecordResponse second = kinesis.putRecord(r -> r.streamName(stream).partitionKey("k")
                    .explicitHashKey("0").sequenceNumberForOrdering(first.sequenceNumber())
                    .data(SdkBytes.fromUtf8String("second")));
            assertTrue(new java.math.BigInteger(second.sequenceNumber())
                    .compareTo(new java.math.BigInteger(first.sequenceNumber())) > 0);
            written.get(firstShard).add("second");
            Instant afterSecond = Instant.now();
            Thread.sleep(20);

            List<PutRecordsRequestEntry> entries = new ArrayList<>();
            for (int i = 0; i < 50; i++) {
                entries.add(PutRecordsRequestEntry.builder().partitionKey("key-" + i)
                        .data(SdkBytes.fromUtf8String("batch-" + i)).build());
            }
            PutRecordsResponse batch = kinesis.putRecords(r -> r.streamName(stream).records(entries));
            assertEquals(0, batch.failedRecordCount());
            for (int i = 0; i < entries.size(); i++) {
                written.computeIfAbsent(batch.records().get(i).shardId(), k -> new ArrayList<>())
                        .add("batch-" + i);
            }

            for (Shard shard : shards) {
                assertEquals(written.getOrDefault(shard.shardId(), List.of()),
                        readAll(kinesis, stream, shard.shardId(), ShardIteratorType.TRIM_HORIZON, null, null),
                        "GetRecords of " + shard.shardId());
            }
            List<String> afterFirst = new ArrayList<>(written.get(firstShard).subList(1, written.get(firstShard).size()));
            assertEquals(written.get(firstShard), readAll(kinesis, stream, firstShard,
                    ShardIteratorType.AT_SEQUENCE_NUMBER, first.sequenceNumber(), null));
            assertEquals(afterFirst, readAll(kinesis, stream, firstShard,
                    ShardIteratorType.AFTER_SEQUENCE_NUMBER, first.sequenceNumber(), null));
            List<String> batchOnly = written.get(firstShard).subList(2, written.get(firstShard).size());
            assertEquals(batchOnly, readAll(kinesis, stream, firstShard, ShardIteratorType.AT_TIMESTAMP, null, afterSecond));
            assertEquals(List.of(), readAll(kinesis, stream, firstShard, ShardIteratorType.LATEST, null, null));

            Consumer consumer = kinesis.registerStreamConsumer(r -> r.streamARN(streamArn).consumerName("java-sdk"))
                    .consumer();
            waitActive(kinesis, consumer.consumerARN());
            assertEquals(List.of("java-sdk"), kinesis.listStreamConsumers(r -> r.streamARN(streamArn))
                    .consumers().stream().map(Consumer::consumerName).toList());
            for (Shard shard : shards) {
                List<String> want = written.getOrDefault(shard.shardId(), List.of());
                assertEquals(want, Clients.subscribe(async, consumer.consumerARN(), shard.shardId(), want.size()),
                        "SubscribeToShard of " + shard.shardId());
            }
            // A plain call on the same client, whose metrics say which protocol its connection spoke.
            async.describeStreamConsumer(r -> r.consumerARN(consumer.consumerARN())).get(10, TimeUnit.SECONDS);
            Instant deadline = Instant.now().plus(Duration.ofSeconds(5));
            while (!http2.seen() && Instant.now().isBefore(deadline)) {
                Thread.sleep(20);
            }
            assertTrue(http2.seen(), "the Netty client must have spoken HTTP/2 to " + endpoint);
            kinesis.deregisterStreamConsumer(r -> r.consumerARN(consumer.consumerARN()));

            assertTrue(syncTypes.seen.size() > 10, syncTypes.seen.toString());
            assertEquals(Set.of(CBOR), Set.copyOf(syncTypes.seen), "the SDK's default protocol for Kinesis is CBOR");
            // The SDK sends SubscribeToShard, an event-stream operation, as JSON even with CBOR on.
            assertEquals(List.of(JSON, JSON, CBOR), asyncTypes.seen);
        }
    }

    /** GetShardIterator of the given type, then GetRecords (3 at a time) up to the tip. */
    private static List<String> readAll(KinesisClient kinesis, String stream, String shardId,
            ShardIteratorType type, String sequenceNumber, Instant timestamp) {
        String iterator = kinesis.getShardIterator(r -> r.streamName(stream).shardId(shardId)
                .shardIteratorType(type).startingSequenceNumber(sequenceNumber).timestamp(timestamp))
                .shardIterator();
        List<String> data = new ArrayList<>();
        for (int page = 0; page < 100 && iterator != null; page++) {
            String current = iterator;
            GetRecordsResponse response = kinesis.getRecords(r -> r.shardIterator(current).limit(3));
            for (Record record : response.records()) {
                data.add(record.data().asUtf8String());
            }
            if (response.records().isEmpty() && response.millisBehindLatest() == 0) {
                break;
            }
            iterator = response.nextShardIterator();
        }
        return data;
    }

    private static void waitActive(KinesisClient kinesis, String consumerArn) throws InterruptedException {
        Instant deadline = Instant.now().plus(Duration.ofSeconds(10));
        while (kinesis.describeStreamConsumer(r -> r.consumerARN(consumerArn)).consumerDescription()
                .consumerStatus() != ConsumerStatus.ACTIVE) {
            assertTrue(Instant.now().isBefore(deadline), "consumer not ACTIVE within 10 s");
            Thread.sleep(50);
        }
    }
}
