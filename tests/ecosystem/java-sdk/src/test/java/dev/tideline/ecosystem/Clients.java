package dev.tideline.ecosystem;

import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.http.Http2Metric;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.SdkHttpClient;
import software.amazon.awssdk.http.SdkHttpConfigurationOption;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.http.async.SdkAsyncHttpClient;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.metrics.MetricCollection;
import software.amazon.awssdk.metrics.MetricPublisher;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.firehose.FirehoseClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;
import software.amazon.awssdk.services.kinesis.model.SubscribeToShardRequest;
import software.amazon.awssdk.services.kinesis.model.SubscribeToShardResponseHandler;
import software.amazon.awssdk.utils.AttributeMap;

/**
 * SDK clients pointed at a {@link TidelineServer}, configured as a user would: an endpoint
 * override, any static credentials, and for an https endpoint (the server's self-signed
 * certificate) the SDK's trust-all-certificates option.
 */
final class Clients {
    static final Region REGION = Region.US_EAST_1;
    private static final StaticCredentialsProvider CREDENTIALS =
            StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDTIDELINE", "tideline-secret"));

    private Clients() {}

    /** Records the Content-Type of every request, to show which protocol the SDK spoke. */
    static final class ContentTypes implements ExecutionInterceptor {
        final List<String> seen = Collections.synchronizedList(new ArrayList<>());

        @Override
        public void beforeTransmission(Context.BeforeTransmission context, ExecutionAttributes attributes) {
            seen.add(context.httpRequest().firstMatchingHeader("Content-Type").orElse("(none)"));
        }
    }

    /** Notes whether any call ran over an HTTP/2 connection: only those report HTTP/2 window sizes. */
    static final class Http2Seen implements MetricPublisher {
        private final AtomicBoolean seen = new AtomicBoolean();

        @Override
        public void publish(MetricCollection metrics) {
            if (reportsHttp2(metrics)) {
                seen.set(true);
            }
        }

        private static boolean reportsHttp2(MetricCollection metrics) {
            return !metrics.metricValues(Http2Metric.REMOTE_STREAM_WINDOW_SIZE_IN_BYTES).isEmpty()
                    || metrics.children().stream().anyMatch(Http2Seen::reportsHttp2);
        }

        boolean seen() {
            return seen.get();
        }

        @Override
        public void close() {}
    }

    private static AttributeMap httpDefaults(URI endpoint) {
        return AttributeMap.builder()
                .put(SdkHttpConfigurationOption.TRUST_ALL_CERTIFICATES, "https".equals(endpoint.getScheme()))
                .build();
    }

    static SdkHttpClient syncHttp(URI endpoint) {
        return ApacheHttpClient.builder().buildWithDefaults(httpDefaults(endpoint));
    }

    /** The Netty client speaking HTTP/2: h2c over http, ALPN h2 over https. */
    static SdkAsyncHttpClient http2(URI endpoint) {
        return NettyNioAsyncHttpClient.builder()
                .protocol(Protocol.HTTP2)
                .connectionAcquisitionTimeout(Duration.ofSeconds(10))
                .buildWithDefaults(httpDefaults(endpoint));
    }

    static KinesisClient kinesis(URI endpoint, ContentTypes contentTypes) {
        return KinesisClient.builder()
                .endpointOverride(endpoint)
                .region(REGION)
                .credentialsProvider(CREDENTIALS)
                .httpClient(syncHttp(endpoint))
                .overrideConfiguration(c -> c.addExecutionInterceptor(contentTypes))
                .build();
    }

    static KinesisAsyncClient kinesisAsync(URI endpoint, ContentTypes contentTypes, Http2Seen http2Seen) {
        return KinesisAsyncClient.builder()
                .endpointOverride(endpoint)
                .region(REGION)
                .credentialsProvider(CREDENTIALS)
                .httpClient(http2(endpoint))
                .overrideConfiguration(c -> c.addExecutionInterceptor(contentTypes).addMetricPublisher(http2Seen))
                .build();
    }

    static FirehoseClient firehose(URI endpoint) {
        return FirehoseClient.builder()
                .endpointOverride(endpoint)
                .region(REGION)
                .credentialsProvider(CREDENTIALS)
                .httpClient(syncHttp(endpoint))
                .build();
    }

    /**
     * SubscribeToShard from TRIM_HORIZON through {@code consumerArn} until {@code want} records
     * arrived; their data as UTF-8, in order.
     */
    static List<String> subscribe(KinesisAsyncClient client, String consumerArn, String shardId, int want)
            throws Exception {
        List<String> data = Collections.synchronizedList(new ArrayList<>());
        CompletableFuture<Void> enough = new CompletableFuture<>();
        SubscribeToShardResponseHandler handler = SubscribeToShardResponseHandler.builder()
                .onError(enough::completeExceptionally)
                .subscriber(SubscribeToShardResponseHandler.Visitor.builder()
                        .onSubscribeToShardEvent(event -> {
                            event.records().forEach(record -> data.add(record.data().asUtf8String()));
                            if (data.size() >= want) {
                                enough.complete(null);
                            }
                        })
                        .build())
                .build();
        CompletableFuture<Void> call = client.subscribeToShard(
                SubscribeToShardRequest.builder()
                        .consumerARN(consumerArn)
                        .shardId(shardId)
                        .startingPosition(p -> p.type(ShardIteratorType.TRIM_HORIZON))
                        .build(),
                handler);
        call.whenComplete((ignored, error) -> {
            if (error != null) {
                enough.completeExceptionally(error);
            } else {
                enough.complete(null);
            }
        });
        enough.get(30, TimeUnit.SECONDS);
        call.cancel(true);
        synchronized (data) {
            return new ArrayList<>(data);
        }
    }
}
