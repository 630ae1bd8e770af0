package dev.tideline.ecosystem;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

/**
 * The requests a tideline server did not answer with 200, from its {@code /metrics}
 * ({@code tideline_requests_total} samples). Printed when a test class is done, so a client's
 * failed calls show in the test output even when the client retried them silently.
 */
public final class FailedRequests {
    private FailedRequests() {}

    public static void print(URI endpoint) {
        try {
            HttpResponse<String> metrics = HttpClient.newHttpClient()
                    .send(HttpRequest.newBuilder(endpoint.resolve("/metrics")).build(), HttpResponse.BodyHandlers.ofString());
            metrics.body().lines()
                    .filter(line -> line.startsWith("tideline_requests_total{") && !line.contains("status=\"200\""))
                    .forEach(line -> System.out.println("tideline answered: " + line));
        } catch (IOException e) {
            System.out.println("tideline /metrics unreadable: " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
