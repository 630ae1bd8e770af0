package dev.tideline.ecosystem;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.firehose.FirehoseClient;
import software.amazon.awssdk.services.firehose.model.DeliveryStreamStatus;
import software.amazon.awssdk.services.firehose.model.PutRecordBatchResponse;
import software.amazon.awssdk.services.firehose.model.Record;

/** Firehose PutRecordBatch through the AWS SDK for Java v2, delivered to a --s3-dir bucket folder. */
class FirehoseTest {
    @Test
    void putRecordBatchIsDelivered(@TempDir Path buckets) throws Exception {
        try (TidelineServer server = TidelineServer.start("--s3-dir", buckets.toString());
                FirehoseClient firehose = Clients.firehose(server.endpoint())) {
            String name = "java-firehose";
            firehose.createDeliveryStream(r -> r.deliveryStreamName(name)
                    .extendedS3DestinationConfiguration(s3 -> s3
                            .roleARN("arn:aws:iam::000000000000:role/firehose")
                            .bucketARN("arn:aws:s3:::java-bucket")
                            .bufferingHints(b -> b.sizeInMBs(1).intervalInSeconds(1))));
            waitActive(firehose, name);

            List<Record> records = new ArrayList<>();
            StringBuilder expected = new StringBuilder();
            for (int i = 0; i < 20; i++) {
                String line = "{\"n\":" + i + "}\n";
                records.add(Record.builder().data(SdkBytes.fromUtf8String(line)).build());
                expected.append(line);
            }
            PutRecordBatchResponse response = firehose.putRecordBatch(r -> r.deliveryStreamName(name).records(records));
            assertEquals(0, response.failedPutCount());
            assertEquals(20, response.requestResponses().size());
            assertTrue(response.requestResponses().stream().allMatch(result -> result.recordId() != null));

            assertEquals(expected.toString(), waitForObjects(buckets.resolve("java-bucket"), expected.length()));
        }
    }

    private static void waitActive(FirehoseClient firehose, String name) throws InterruptedException {
        Instant deadline = Instant.now().plus(Duration.ofSeconds(10));
        while (firehose.describeDeliveryStream(r -> r.deliveryStreamName(name)).deliveryStreamDescription()
                .deliveryStreamStatus() != DeliveryStreamStatus.ACTIVE) {
            assertTrue(Instant.now().isBefore(deadline), "delivery stream not ACTIVE within 10 s");
            Thread.sleep(50);
        }
    }

    /** The bucket folder's objects concatenated in key order, once they hold {@code length} bytes. */
    private static String waitForObjects(Path bucket, int length) throws Exception {
        Instant deadline = Instant.now().plus(Duration.ofSeconds(20));
        while (true) {
            StringBuilder content = new StringBuilder();
            if (Files.isDirectory(bucket)) {
                try (Stream<Path> files = Files.walk(bucket)) {
                    for (Path file : files.filter(Files::isRegularFile).sorted().toList()) {
                        content.append(Files.readString(file, StandardCharsets.UTF_8));
                    }
                }
            }
            if (content.length() >= length || Instant.now().isAfter(deadline)) {
                return content.toString();
            }
            Thread.sleep(100);
        }
    }
}
