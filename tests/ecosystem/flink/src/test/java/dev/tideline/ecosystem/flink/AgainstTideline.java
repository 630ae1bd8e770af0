package dev.tideline.ecosystem.flink;

import dev.tideline.ecosystem.FailedRequests;
import dev.tideline.ecosystem.Streams;
import dev.tideline.ecosystem.TidelineServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;

/** One tideline process per test class, and the SDK client the tests set streams up with. */
abstract class AgainstTideline {
    static TidelineServer tideline;
    static KinesisAsyncClient kinesis;

    @BeforeAll
    static void startTideline() throws Exception {
        tideline = TidelineServer.start();
        kinesis = Streams.client(tideline.endpoint());
    }

    @AfterAll
    static void stopTideline() throws Exception {
        FailedRequests.print(tideline.endpoint());
        kinesis.close();
        tideline.close();
    }
}
