package dev.tideline.ecosystem;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The real tideline binary ({@code TIDELINE_BIN}) serving in memory on a free port; its endpoint is
 * read from the line it prints on stdout. Closing it kills the process.
 */
public final class TidelineServer implements AutoCloseable {
    private static final String LISTENING = "tideline listening on ";

    private final Process process;
    private final URI endpoint;
    private final Path log;

    private TidelineServer(Process process, URI endpoint, Path log) {
        this.process = process;
        this.endpoint = endpoint;
        this.log = log;
    }

    /** {@code tideline serve --in-memory --listen 127.0.0.1:0} plus {@code extraArgs}. */
    public static TidelineServer start(String... extraArgs) throws IOException, InterruptedException {
        String binary = System.getenv("TIDELINE_BIN");
        if (binary == null || binary.isEmpty()) {
            throw new IllegalStateException("TIDELINE_BIN must name the tideline binary");
        }
        List<String> command = new ArrayList<>(List.of(binary, "serve", "--in-memory", "--listen", "127.0.0.1:0"));
        command.addAll(List.of(extraArgs));
        Path log = Files.createTempFile("tideline-java-", ".log");
        ProcessBuilder builder = new ProcessBuilder(command).redirectError(log.toFile());
        builder.environment().put("TIDELINE_LOG", "info");
        Process process = builder.start();
        CompletableFuture<URI> endpoint = new CompletableFuture<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader lines = new BufferedReader(
                    new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                // Keeps draining stdout so that the server never blocks on a full pipe.
                for (String line; (line = lines.readLine()) != null; ) {
                    if (line.startsWith(LISTENING)) {
                        endpoint.complete(URI.create(line.substring(LISTENING.length())));
                    }
                }
            } catch (IOException ignored) {
                // The process ended.
            }
            endpoint.completeExceptionally(new IllegalStateException("tideline exited without listening"));
        }, "tideline-stdout");
        reader.setDaemon(true);
        reader.start();
        try {
            return new TidelineServer(process, endpoint.get(10, TimeUnit.SECONDS), log);
        } catch (Exception e) {
            process.destroyForcibly();
            throw new IllegalStateException("tideline did not start; log:\n" + Files.readString(log), e);
        }
    }

    public URI endpoint() {
        return endpoint;
    }

    /** The server's log (stderr), for failure messages. */
    public String log() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(cannot read " + log + ": " + e + ")";
        }
    }

    @Override
    public void close() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
        File file = log.toFile();
        if (!file.delete()) {
            file.deleteOnExit();
        }
    }
}
