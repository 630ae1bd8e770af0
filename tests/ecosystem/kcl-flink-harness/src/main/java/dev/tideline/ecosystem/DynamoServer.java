package dev.tideline.ecosystem;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * moto's server (PyPI {@code moto[server,dynamodb]}) on 127.0.0.1: the DynamoDB the KCL keeps its
 * lease table in. Amazon's DynamoDB Local is not used: its licence is not open source.
 *
 * <p>The Python is {@code TIDELINE_PYTHON} (run-kcl-flink.sh points it at the test venv).
 */
public final class DynamoServer extends ServerProcess {
    private DynamoServer(Process process, URI endpoint) {
        super(process, endpoint);
    }

    public static DynamoServer start() throws IOException, InterruptedException {
        String python = System.getenv().getOrDefault("TIDELINE_PYTHON", "python3");
        int port = freePort();
        Path log = Files.createDirectories(Path.of("target")).resolve("moto-" + port + ".log");
        Process process = new ProcessBuilder(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", Integer.toString(port))
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        // moto.server prints nothing machine-readable before it serves, so wait for the port.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!accepts(port)) {
            if (!process.isAlive() || System.nanoTime() > deadline) {
                process.destroyForcibly();
                throw new IllegalStateException("moto server did not start; log: " + log);
            }
            Thread.sleep(100);
        }
        return new DynamoServer(process, URI.create("http://127.0.0.1:" + port));
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    private static boolean accepts(int port) {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress("127.0.0.1", port), 200);
            return true;
        } catch (IOException e) {
            return false;
        }
    }
}
