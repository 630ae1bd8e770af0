package dev.tideline.ecosystem.kcl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tideline.ecosystem.DynamoServer;
import dev.tideline.ecosystem.FailedRequests;
import dev.tideline.ecosystem.Streams;
import dev.tideline.ecosystem.TidelineServer;
import java.math.BigInteger;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.leases.LeaseAssignmentStrategy;
import software.amazon.kinesis.leases.LeaseManagementConfig;
import software.amazon.kinesis.metrics.MetricsLevel;
import software.amazon.kinesis.retrieval.RetrievalConfig;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * KCL 3.x, unmodified, consuming a Tideline stream with two workers: every record processed,
 * checkpoints advancing, a split and a merge during consumption (children only after their
 * parents), and one worker stopped without releasing its leases while the other takes them over
 * and goes on from the checkpoints. Once with polling (GetRecords), once with enhanced fan-out
 * (SubscribeToShard over h2c).
 */
class KclTest {
    enum Retrieval { POLLING, FAN_OUT }

    private static final int RECORDS_PER_BATCH = 60;
    private static final Duration PATIENCE = Duration.ofSeconds(120);

    private static TidelineServer tideline;
    private static DynamoServer dynamo;
    private static KinesisAsyncClient kinesis;
    private static DynamoDbAsyncClient dynamoClient;
    private static CloudWatchAsyncClient cloudWatch;

    @BeforeAll
    static void startServers() throws Exception {
        tideline = TidelineServer.start();
        dynamo = DynamoServer.start();
        kinesis = Streams.client(tideline.endpoint());
        dynamoClient = DynamoDbAsyncClient.builder()
                .endpointOverride(dynamo.endpoint())
                .region(Streams.REGION)
                .credentialsProvider(Streams.CREDENTIALS)
                .build();
        // Never called with MetricsLevel.NONE; the KCL's ConfigsBuilder still wants one.
        cloudWatch = CloudWatchAsyncClient.builder()
                .endpointOverride(dynamo.endpoint())
                .region(Streams.REGION)
                .credentialsProvider(Streams.CREDENTIALS)
                .build();
    }

    @AfterAll
    static void stopServers() throws Exception {
        FailedRequests.print(tideline.endpoint());
        kinesis.close();
        dynamoClient.close();
        cloudWatch.close();
        dynamo.close();
        tideline.close();
    }

    @ParameterizedTest
    @EnumSource(Retrieval.class)
    void twoWorkersReshardAndFailOver(Retrieval retrieval) throws Exception {
        String stream = "kcl-" + retrieval.name().toLowerCase().replace('_', '-');
        String application = stream + "-app";
        Streams streams = new Streams(kinesis);
        streams.create(stream, 4);
        ConsumptionLog log = new ConsumptionLog();
        Set<String> written = new HashSet<>(putBatch(streams, stream, "before-reshard"));

        Scheduler first = scheduler("worker-a", stream, application, retrieval, log);
        Scheduler second = scheduler("worker-b", stream, application, retrieval, log);
        Thread firstThread = run(first);
        Thread secondThread = null;
        try {
            await("every record of the first batch processed", () -> log.dataSeen().containsAll(written));
            // The second worker joins once the first has created the application's state: two KCL
            // 3.5.1 workers starting together on a new application race to create the migration
            // state, and the loser's Scheduler never finishes initialising (a KCL bug, not ours).
            secondThread = run(second);

            reshard(streams, stream);
            written.addAll(putBatch(streams, stream, "after-reshard"));
            await("every record after the split and merge processed", () -> log.dataSeen().containsAll(written));
            await("both workers hold leases", () -> !log.shardsHeldBy("worker-a").isEmpty()
                    && !log.shardsHeldBy("worker-b").isEmpty());

            // worker-a stops renewing its leases without releasing them, as a killed process would.
            Set<String> orphaned = log.shardsHeldBy("worker-a");
            first.shutdown();
            // Its record processors stop with its run loop; what they did until then counts as before the kill.
            firstThread.join(PATIENCE.toMillis());
            assertFalse(firstThread.isAlive(), "worker-a did not stop");
            Map<String, BigInteger> checkpointsAtKill = log.lastCheckpoints();
            int deliveriesAtKill = log.deliveries().size();
            written.addAll(putBatch(streams, stream, "after-failover"));
            await("worker-b takes over and processes every record", () -> log.dataSeen().containsAll(written));

            if (retrieval == Retrieval.FAN_OUT) {
                // The KCL registered its enhanced fan-out consumer (named after the application) and read through it.
                assertEquals(List.of(application), kinesis.listStreamConsumers(b -> b.streamARN(Streams.arn(stream)))
                        .join().consumers().stream().map(c -> c.consumerName()).toList());
            }
            assertChildrenAfterParents(streams.shards(stream), log);
            assertCheckpointsAdvance(log);
            assertResumedFromCheckpoints(orphaned, checkpointsAtKill, log.deliveries().subList(deliveriesAtKill, log.deliveries().size()));
        } finally {
            first.shutdown();
            second.shutdown();
            if (secondThread != null) {
                secondThread.join(PATIENCE.toMillis());
            }
        }
    }

    private static List<String> putBatch(Streams streams, String stream, String batch) {
        List<String> data = IntStream.range(0, RECORDS_PER_BATCH).mapToObj(i -> batch + "-" + i).toList();
        data.forEach(d -> streams.put(stream, "key-" + d, d));
        return data;
    }

    /** Splits the first shard in the middle of its hash range and merges the last two. */
    private static void reshard(Streams streams, String stream) throws InterruptedException {
        List<Shard> shards = streams.shards(stream);
        Shard toSplit = shards.get(0);
        BigInteger start = new BigInteger(toSplit.hashKeyRange().startingHashKey());
        BigInteger end = new BigInteger(toSplit.hashKeyRange().endingHashKey());
        kinesis.splitShard(b -> b.streamName(stream)
                        .shardToSplit(toSplit.shardId())
                        .newStartingHashKey(start.add(end).shiftRight(1).toString()))
                .join();
        streams.awaitActive(stream);
        kinesis.mergeShards(b -> b.streamName(stream)
                        .shardToMerge(shards.get(2).shardId())
                        .adjacentShardToMerge(shards.get(3).shardId()))
                .join();
        streams.awaitActive(stream);
    }

    private static void assertChildrenAfterParents(List<Shard> shards, ConsumptionLog log) {
        List<Shard> children = shards.stream().filter(s -> s.parentShardId() != null).toList();
        assertEquals(3, children.size(), "two split children and one merge child");
        for (Shard child : children) {
            long firstChildDelivery = log.deliveries().stream()
                    .filter(d -> d.shard().equals(child.shardId()))
                    .mapToLong(ConsumptionLog.Delivery::order)
                    .min()
                    .orElseThrow(() -> new AssertionError("nothing delivered from " + child.shardId()));
            List<String> parents = new ArrayList<>();
            parents.add(child.parentShardId());
            if (child.adjacentParentShardId() != null) {
                parents.add(child.adjacentParentShardId());
            }
            for (String parent : parents) {
                long parentEnd = log.shardEnd(parent)
                        .orElseThrow(() -> new AssertionError(parent + " never reached its end"))
                        .order();
                assertTrue(parentEnd < firstChildDelivery,
                        child.shardId() + " was processed before its parent " + parent + " ended");
            }
        }
    }

    private static void assertCheckpointsAdvance(ConsumptionLog log) {
        Map<String, List<BigInteger>> byShard = log.checkpoints().stream()
                .collect(Collectors.groupingBy(ConsumptionLog.Checkpoint::shard,
                        Collectors.mapping(ConsumptionLog.Checkpoint::sequence, Collectors.toList())));
        assertFalse(byShard.isEmpty(), "no checkpoint was taken");
        byShard.forEach((shard, sequences) -> {
            for (int i = 1; i < sequences.size(); i++) {
                assertTrue(sequences.get(i).compareTo(sequences.get(i - 1)) > 0,
                        "checkpoints of " + shard + " went backwards: " + sequences);
            }
        });
    }

    /**
     * worker-b's first record on each orphaned shard comes after the shard's last checkpoint (a
     * shard never checkpointed is read from its start, and every record is checked processed anyway).
     */
    private static void assertResumedFromCheckpoints(
            Set<String> orphaned, Map<String, BigInteger> checkpoints, List<ConsumptionLog.Delivery> afterKill) {
        assertFalse(orphaned.isEmpty(), "worker-a held no lease when it was stopped");
        for (String shard : orphaned) {
            BigInteger firstAfterKill = afterKill.stream()
                    .filter(d -> d.shard().equals(shard))
                    .peek(d -> assertEquals("worker-b", d.worker(), "a stopped worker delivered a record"))
                    .map(ConsumptionLog.Delivery::sequence)
                    .min(BigInteger::compareTo)
                    .orElseThrow(() -> new AssertionError("worker-b processed nothing from " + shard));
            BigInteger checkpoint = checkpoints.get(shard);
            assertTrue(checkpoint == null || firstAfterKill.compareTo(checkpoint) > 0,
                    "worker-b re-read " + shard + " from " + firstAfterKill + ", before its checkpoint " + checkpoint);
        }
    }

    private static Scheduler scheduler(
            String worker, String stream, String application, Retrieval retrieval, ConsumptionLog log) {
        ConfigsBuilder configs = new ConfigsBuilder(stream, application, kinesis, dynamoClient, cloudWatch, worker,
                () -> new RecordingProcessor(worker, log));
        InitialPositionInStreamExtended trimHorizon =
                InitialPositionInStreamExtended.newInitialPosition(InitialPositionInStream.TRIM_HORIZON);

        LeaseManagementConfig leases = configs.leaseManagementConfig()
                .initialPositionInStream(trimHorizon)
                // Test-sized timings: a lease (and the leader's lock) lapse within seconds, not minutes.
                .failoverTimeMillis(3_000)
                // The start-up shard sync sleeps this long after creating the first leases (default 60 s).
                .shardSyncIntervalMillis(1_000)
                .dynamoDbLockBasedLeaderLeaseDurationInMillis(3_000)
                .dynamoDbLockBasedLeaderHeartbeatPeriodInMillis(1_000);
        // Leases spread evenly by count, so the worker that joins later is given some at once. The
        // default, utilisation-aware assignment only hands a newcomer new leases (here: whichever
        // children the reshard makes), so whether worker-b gets any before the failover is chance.
        leases.leaseAssignmentStrategy(LeaseAssignmentStrategy.LEASE_COUNT_BASED);
        // Utilisation metrics only feed the utilisation-aware assignment.
        leases.workerUtilizationAwareAssignmentConfig().disableWorkerMetrics(true);

        RetrievalConfig retrievalConfig = configs.retrievalConfig().initialPositionInStreamExtended(trimHorizon);
        if (retrieval == Retrieval.POLLING) {
            retrievalConfig.retrievalSpecificConfig(
                    new PollingConfig(stream, kinesis).idleTimeBetweenReadsInMillis(200));
        }
        return new Scheduler(
                configs.checkpointConfig(),
                configs.coordinatorConfig().parentShardPollIntervalMillis(500),
                leases,
                configs.lifecycleConfig(),
                configs.metricsConfig().metricsLevel(MetricsLevel.NONE),
                configs.processorConfig(),
                retrievalConfig);
    }

    private static Thread run(Scheduler scheduler) {
        Thread thread = new Thread(scheduler, "kcl-scheduler");
        thread.setDaemon(true);
        thread.start();
        return thread;
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long start = System.nanoTime();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - start > PATIENCE.toNanos()) {
                throw new AssertionError("timed out waiting until " + what);
            }
            Thread.sleep(200);
        }
        System.out.printf("%s: %d ms%n", what, Duration.ofNanos(System.nanoTime() - start).toMillis());
    }
}
