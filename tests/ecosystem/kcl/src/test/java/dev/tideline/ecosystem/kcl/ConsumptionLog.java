package dev.tideline.ecosystem.kcl;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

/**
 * What every worker's record processors saw, in one global order: deliveries, checkpoints and
 * shard ends. The assertions of {@link KclTest} read it.
 */
final class ConsumptionLog {
    record Delivery(long order, String worker, String shard, BigInteger sequence, String data) {}

    record Checkpoint(long order, String worker, String shard, BigInteger sequence) {}

    record ShardEnd(long order, String worker, String shard) {}

    private final AtomicLong clock = new AtomicLong();
    private final List<Delivery> deliveries = new CopyOnWriteArrayList<>();
    private final List<Checkpoint> checkpoints = new CopyOnWriteArrayList<>();
    private final Map<String, ShardEnd> shardEnds = new ConcurrentHashMap<>();
    /** Shard → the worker whose record processor holds its lease now. */
    private final Map<String, String> holders = new ConcurrentHashMap<>();

    void leaseTaken(String worker, String shard) {
        holders.put(shard, worker);
    }

    void leaseGone(String worker, String shard) {
        holders.remove(shard, worker);
    }

    void delivered(String worker, String shard, String sequence, String data) {
        deliveries.add(new Delivery(clock.incrementAndGet(), worker, shard, new BigInteger(sequence), data));
    }

    void checkpointed(String worker, String shard, String sequence) {
        checkpoints.add(new Checkpoint(clock.incrementAndGet(), worker, shard, new BigInteger(sequence)));
    }

    void shardEnded(String worker, String shard) {
        shardEnds.putIfAbsent(shard, new ShardEnd(clock.incrementAndGet(), worker, shard));
    }

    Set<String> dataSeen() {
        return deliveries.stream().map(Delivery::data).collect(Collectors.toSet());
    }

    List<Delivery> deliveries() {
        return new ArrayList<>(deliveries);
    }

    List<Checkpoint> checkpoints() {
        return new ArrayList<>(checkpoints);
    }

    Optional<ShardEnd> shardEnd(String shard) {
        return Optional.ofNullable(shardEnds.get(shard));
    }

    /** Shards whose lease the worker's record processors hold now. */
    Set<String> shardsHeldBy(String worker) {
        return holders.entrySet().stream()
                .filter(e -> e.getValue().equals(worker))
                .map(Map.Entry::getKey)
                .collect(Collectors.toSet());
    }

    /** The last checkpoint per shard, whichever worker took it. */
    Map<String, BigInteger> lastCheckpoints() {
        return checkpoints.stream()
                .collect(Collectors.toMap(Checkpoint::shard, Checkpoint::sequence, (a, b) -> b));
    }
}
