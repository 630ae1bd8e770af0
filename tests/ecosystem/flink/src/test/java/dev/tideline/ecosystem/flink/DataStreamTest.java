package dev.tideline.ecosystem.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.tideline.ecosystem.Streams;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.IntStream;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.kinesis.sink.KinesisStreamsSink;
import org.apache.flink.connector.kinesis.source.KinesisStreamsSource;
import org.apache.flink.connector.kinesis.source.config.KinesisStreamsSourceConfigConstants;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.connectors.kinesis.FlinkKinesisConsumer;
import org.apache.flink.streaming.connectors.kinesis.config.ConsumerConfigConstants;
import org.junit.jupiter.api.Test;

/**
 * Flink 1.20 DataStream jobs on an embedded MiniCluster (the local environment): Kinesis source →
 * map → {@link KinesisStreamsSink}, with the polling {@link KinesisStreamsSource} and with an
 * enhanced fan-out reader. The connector served for Flink 1.20 here (4.3.0-1.19) gives the new
 * source polling only, so the EFO reader is its {@link FlinkKinesisConsumer} with
 * {@code flink.stream.recpublisher = EFO} (SubscribeToShard).
 */
class DataStreamTest extends AgainstTideline {
    private static final int RECORDS = 40;

    @Test
    void pollingSourceMapSink() throws Exception {
        runMapJob("polling", (env, input) -> {
            Configuration config = Configuration.fromMap(toMap(FlinkJobs.awsProperties(tideline.endpoint())));
            config.set(KinesisStreamsSourceConfigConstants.STREAM_INITIAL_POSITION,
                    KinesisStreamsSourceConfigConstants.InitialPosition.TRIM_HORIZON);
            KinesisStreamsSource<String> source = KinesisStreamsSource.<String>builder()
                    .setStreamArn(Streams.arn(input))
                    .setSourceConfig(config)
                    .setDeserializationSchema(new SimpleStringSchema())
                    .build();
            return env.fromSource(source, WatermarkStrategy.noWatermarks(), "kinesis-polling", Types.STRING);
        });
    }

    @Test
    void enhancedFanOutSourceMapSink() throws Exception {
        runMapJob("efo", (env, input) -> {
            Properties properties = FlinkJobs.awsProperties(tideline.endpoint());
            properties.setProperty(ConsumerConfigConstants.STREAM_INITIAL_POSITION, "TRIM_HORIZON");
            properties.setProperty(ConsumerConfigConstants.RECORD_PUBLISHER_TYPE, "EFO");
            properties.setProperty(ConsumerConfigConstants.EFO_CONSUMER_NAME, "flink-efo");
            return env.addSource(new FlinkKinesisConsumer<>(input, new SimpleStringSchema(), properties));
        });
        // The job read through its registered enhanced fan-out consumer.
        assertEquals(List.of("flink-efo"), kinesis.listStreamConsumers(b -> b.streamARN(Streams.arn("flink-efo-in")))
                .join().consumers().stream().map(c -> c.consumerName()).toList());
    }

    interface SourceFactory {
        DataStream<String> source(StreamExecutionEnvironment env, String inputStream) throws Exception;
    }

    private void runMapJob(String variant, SourceFactory sourceFactory) throws Exception {
        String input = "flink-" + variant + "-in";
        String output = "flink-" + variant + "-out";
        Streams streams = new Streams(kinesis);
        streams.create(input, 2);
        streams.create(output, 1);
        List<String> written = IntStream.range(0, RECORDS).mapToObj(i -> variant + "-record-" + i).toList();
        written.forEach(d -> streams.put(input, d, d));

        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(1);
        KinesisStreamsSink<String> sink = KinesisStreamsSink.<String>builder()
                .setKinesisClientProperties(FlinkJobs.awsProperties(tideline.endpoint()))
                .setStreamName(output)
                .setSerializationSchema(new SimpleStringSchema())
                .setPartitionKeyGenerator(element -> element)
                .build();
        sourceFactory.source(env, input).map(String::toUpperCase).sinkTo(sink);
        JobClient job = env.executeAsync("kinesis-map-" + variant);
        try {
            List<String> got = FlinkJobs.awaitCount("mapped records", RECORDS, () -> FlinkJobs.readAll(kinesis, output));
            assertEquals(written.stream().map(String::toUpperCase).sorted().toList(), got.stream().sorted().toList());
        } finally {
            job.cancel().join();
        }
    }

    private static Map<String, String> toMap(Properties properties) {
        Map<String, String> map = new HashMap<>();
        properties.stringPropertyNames().forEach(k -> map.put(k, properties.getProperty(k)));
        return map;
    }
}
