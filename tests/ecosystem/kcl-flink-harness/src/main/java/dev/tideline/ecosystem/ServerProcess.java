package dev.tideline.ecosystem;

import java.net.URI;
import java.util.concurrent.TimeUnit;

/** A server process the tests started, at the endpoint it serves; closing stops it. */
public abstract class ServerProcess implements AutoCloseable {
    private final Process process;
    private final URI endpoint;

    protected ServerProcess(Process process, URI endpoint) {
        this.process = process;
        this.endpoint = endpoint;
    }

    public URI endpoint() {
        return endpoint;
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor();
        }
    }
}
