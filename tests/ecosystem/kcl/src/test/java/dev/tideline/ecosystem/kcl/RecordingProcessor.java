package dev.tideline.ecosystem.kcl;

import java.nio.charset.StandardCharsets;
import software.amazon.kinesis.exceptions.InvalidStateException;
import software.amazon.kinesis.exceptions.ShutdownException;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.processor.RecordProcessorCheckpointer;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.retrieval.KinesisClientRecord;

/** A record processor as users write them: note each record, checkpoint after every batch. */
final class RecordingProcessor implements ShardRecordProcessor {
    private final String worker;
    private final ConsumptionLog log;
    private String shard;

    RecordingProcessor(String worker, ConsumptionLog log) {
        this.worker = worker;
        this.log = log;
    }

    @Override
    public void initialize(InitializationInput input) {
        shard = input.shardId();
        log.leaseTaken(worker, shard);
    }

    @Override
    public void processRecords(ProcessRecordsInput input) {
        String last = null;
        for (KinesisClientRecord record : input.records()) {
            log.delivered(worker, shard, record.sequenceNumber(), StandardCharsets.UTF_8.decode(record.data()).toString());
            last = record.sequenceNumber();
        }
        if (last != null) {
            checkpoint(input.checkpointer(), last);
        }
    }

    private void checkpoint(RecordProcessorCheckpointer checkpointer, String sequence) {
        try {
            checkpointer.checkpoint(sequence);
            log.checkpointed(worker, shard, sequence);
        } catch (ShutdownException e) {
            // The lease moved to the other worker meanwhile: it goes on from the previous checkpoint.
        } catch (InvalidStateException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void leaseLost(LeaseLostInput input) {
        log.leaseGone(worker, shard);
    }

    @Override
    public void shardEnded(ShardEndedInput input) {
        try {
            input.checkpointer().checkpoint();
            log.shardEnded(worker, shard);
            log.leaseGone(worker, shard);
        } catch (ShutdownException | InvalidStateException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void shutdownRequested(ShutdownRequestedInput input) {
        // Graceful hand-off between the two workers: nothing beyond the per-batch checkpoints.
        log.leaseGone(worker, shard);
    }
}
