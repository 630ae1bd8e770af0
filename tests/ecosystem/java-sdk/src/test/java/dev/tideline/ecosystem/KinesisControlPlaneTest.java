package dev.tideline.ecosystem;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException;
import software.amazon.awssdk.services.kinesis.model.ScalingType;
import software.amazon.awssdk.services.kinesis.model.StreamDescriptionSummary;
import software.amazon.awssdk.services.kinesis.model.StreamStatus;
import software.amazon.awssdk.services.kinesis.model.Tag;

/** A control-plane round trip through the AWS SDK for Java v2 (CBOR): create, configure, reshard, delete. */
class KinesisControlPlaneTest {
    @Test
    void streamLifecycle() throws Exception {
        try (TidelineServer server = TidelineServer.start();
                KinesisClient kinesis = Clients.kinesis(server.endpoint(), new Clients.ContentTypes())) {
            String stream = "java-control";
            kinesis.createStream(r -> r.streamName(stream).shardCount(1));
            kinesis.waiter().waitUntilStreamExists(r -> r.streamName(stream));
            assertEquals(List.of(stream), kinesis.listStreams(r -> r.limit(10)).streamNames());

            kinesis.increaseStreamRetentionPeriod(r -> r.streamName(stream).retentionPeriodHours(48));
            kinesis.decreaseStreamRetentionPeriod(r -> r.streamName(stream).retentionPeriodHours(36));
            kinesis.addTagsToStream(r -> r.streamName(stream).tags(Map.of("team", "tideline")));
            assertEquals(List.of(Tag.builder().key("team").value("tideline").build()),
                    kinesis.listTagsForStream(r -> r.streamName(stream)).tags());
            kinesis.removeTagsFromStream(r -> r.streamName(stream).tagKeys("team"));
            assertEquals(List.of(), kinesis.listTagsForStream(r -> r.streamName(stream)).tags());

            kinesis.updateShardCount(r -> r.streamName(stream).targetShardCount(2).scalingType(ScalingType.UNIFORM_SCALING));
            kinesis.waiter().waitUntilStreamExists(r -> r.streamName(stream));
            StreamDescriptionSummary summary = kinesis.describeStreamSummary(r -> r.streamName(stream))
                    .streamDescriptionSummary();
            assertEquals(StreamStatus.ACTIVE, summary.streamStatus());
            assertEquals(36, summary.retentionPeriodHours());
            assertEquals(2, summary.openShardCount());
            assertTrue(kinesis.describeLimits().shardLimit() > 0);

            kinesis.deleteStream(r -> r.streamName(stream));
            kinesis.waiter().waitUntilStreamNotExists(r -> r.streamName(stream));
            ResourceNotFoundException missing = assertThrows(ResourceNotFoundException.class,
                    () -> kinesis.describeStreamSummary(r -> r.streamName(stream)));
            assertEquals("Stream " + stream + " under account 000000000000 not found.",
                    missing.awsErrorDetails().errorMessage());
        }
    }
}
