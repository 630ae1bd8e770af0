package dev.tideline.ecosystem;

import java.net.URI;
import java.time.Duration;
import java.util.List;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.PutRecordResponse;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.StreamStatus;

/** Stream set-up and writes through the unmodified AWS SDK for Java v2, as a user's code does. */
public final class Streams {
    public static final Region REGION = Region.US_EAST_1;
    public static final String ACCOUNT = "000000000000";
    public static final StaticCredentialsProvider CREDENTIALS =
            StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDTIDELINETEST", "tideline-test-secret"));

    private final KinesisAsyncClient client;

    public Streams(KinesisAsyncClient client) {
        this.client = client;
    }

    /** The SDK's default async client (Netty, HTTP/2 with prior knowledge over plain http: h2c). */
    public static KinesisAsyncClient client(URI endpoint) {
        return KinesisAsyncClient.builder()
                .endpointOverride(endpoint)
                .region(REGION)
                .credentialsProvider(CREDENTIALS)
                .build();
    }

    public static String arn(String stream) {
        return "arn:aws:kinesis:" + REGION.id() + ":" + ACCOUNT + ":stream/" + stream;
    }

    public void create(String stream, int shards) throws InterruptedException {
        client.createStream(b -> b.streamName(stream).shardCount(shards)).join();
        awaitActive(stream);
    }

    public void awaitActive(String stream) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (client.describeStreamSummary(b -> b.streamName(stream)).join().streamDescriptionSummary().streamStatus()
                != StreamStatus.ACTIVE) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(stream + " did not become ACTIVE");
            }
            Thread.sleep(50);
        }
    }

    public PutRecordResponse put(String stream, String partitionKey, String data) {
        return client.putRecord(b -> b.streamName(stream).partitionKey(partitionKey).data(SdkBytes.fromUtf8String(data)))
                .join();
    }

    public List<Shard> shards(String stream) {
        return client.listShards(b -> b.streamName(stream)).join().shards();
    }

    public KinesisAsyncClient client() {
        return client;
    }
}
