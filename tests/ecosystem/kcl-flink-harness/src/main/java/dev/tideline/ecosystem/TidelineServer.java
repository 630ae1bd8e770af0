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
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One real {@code tideline serve --in-memory} process on 127.0.0.1 with a port the OS picked.
 *
 * <p>The port is learnt from the single {@code tideline listening on http://127.0.0.1:PORT} line
 * ({@code https://} with the {@code --tls-*} flags) the server prints once it accepts
 * connections, so there is no port race. The binary is
 * {@code TIDELINE_BIN} (set by run-kcl-flink.sh), its log goes to {@code target/}.
 */
public final class TidelineServer extends ServerProcess {
    private static final Pattern LISTENING = Pattern.compile("^tideline listening on (https?://127\\.0\\.0\\.1:\\d+)\\s*$");

    private TidelineServer(Process process, URI endpoint) {
        super(process, endpoint);
    }

    public static TidelineServer start(String... extraFlags) throws IOException, InterruptedException {
        String binary = System.getenv("TIDELINE_BIN");
        if (binary == null || !new File(binary).canExecute()) {
            throw new IllegalStateException("TIDELINE_BIN must name the tideline binary (got " + binary + ")");
        }
        List<String> command = new ArrayList<>(List.of(binary, "serve", "--listen", "127.0.0.1:0", "--in-memory"));
        command.addAll(List.of(extraFlags));
        Path log = Files.createDirectories(Path.of("target")).resolve("tideline-" + ProcessHandle.current().pid() + "-" + System.nanoTime() + ".log");
        ProcessBuilder builder = new ProcessBuilder(command).redirectError(log.toFile());
        builder.environment().keySet().removeIf(name -> name.startsWith("TIDELINE_"));
        Process process = builder.start();
        CompletableFuture<URI> announced = new CompletableFuture<>();
        Thread pump = new Thread(() -> readStdout(process, announced), "tideline-stdout");
        pump.setDaemon(true);
        pump.start();
        try {
            return new TidelineServer(process, announced.get(30, TimeUnit.SECONDS));
        } catch (Exception e) {
            process.destroyForcibly();
            throw new IllegalStateException("tideline did not announce its port; log: " + log, e);
        }
    }

    /** Keeps draining stdout so the server never blocks on a full pipe. */
    private static void readStdout(Process process, CompletableFuture<URI> announced) {
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = reader.readLine()) != null) {
                Matcher match = LISTENING.matcher(line);
                if (match.matches()) {
                    announced.complete(URI.create(match.group(1)));
                }
            }
        } catch (IOException e) {
            announced.completeExceptionally(e);
        }
        announced.completeExceptionally(new IOException("tideline closed stdout before listening"));
    }
}
