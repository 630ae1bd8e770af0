package dev.tideline.ecosystem.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tideline.ecosystem.Streams;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Flink SQL (embedded MiniCluster) with the Kinesis table connector, running the files of
 * {@code sql/}: the tutorial's {@code SELECT * FROM kinesis_stream}, and a TUMBLE window aggregate
 * with a watermark inserted into another stream, whose rows must equal the recorded fixture.
 */
class SqlTest extends AgainstTideline {
    private static final Path SQL = Path.of("sql");

    @BeforeAll
    static void defaultCredentials() {
        // The tutorial DDL names no credentials: the connector's default (AUTO) provider chain finds
        // them, here in the system properties that SDK v1 and v2 both read.
        System.setProperty("aws.accessKeyId", "AKIDTIDELINETEST");
        System.setProperty("aws.secretKey", "tideline-test-secret");
        System.setProperty("aws.secretAccessKey", "tideline-test-secret");
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void tutorialSelectReadsTheStream() throws Exception {
        String stream = "kinesis-stream-tutorial";
        Streams streams = new Streams(kinesis);
        streams.create(stream, 1);
        TableEnvironment tables = tableEnvironment();
        List<String> statements = statements("tutorial-select.sql", Map.of("input_stream", stream));
        tables.executeSql(statements.get(0));

        TableResult result = tables.executeSql(statements.get(1));
        // The tutorial reads from LATEST: keep writing until the job has read a few records.
        Thread writer = new Thread(() -> {
            for (int i = 0; i < 400 && !Thread.currentThread().isInterrupted(); i++) {
                streams.put(stream, "id-" + i, "{\"id\": \"id-" + i + "\", \"message\": \"hello " + i + "\"}");
                try {
                    Thread.sleep(250);
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
        writer.start();
        try (CloseableIterator<Row> rows = result.collect()) {
            for (int read = 0; read < 3; read++) {
                assertTrue(rows.hasNext());
                Row row = rows.next();
                String id = (String) row.getField("id");
                assertTrue(id.startsWith("id-"), "unexpected row " + row);
                assertEquals("hello " + id.substring(3), row.getField("message"));
            }
        } finally {
            writer.interrupt();
            writer.join();
        }
    }

    @Test
    void tumbleWindowInsertMatchesTheFixture() throws Exception {
        String input = "readings";
        String output = "window-counts";
        Streams streams = new Streams(kinesis);
        streams.create(input, 1);
        streams.create(output, 1);
        for (String line : Files.readAllLines(SQL.resolve("tumble-window-insert.input.jsonl"))) {
            streams.put(input, line, line);
        }
        List<String> expected = Files.readAllLines(SQL.resolve("tumble-window-insert.expected.jsonl"));

        TableEnvironment tables = tableEnvironment();
        TableResult insert = null;
        for (String statement : statements("tumble-window-insert.sql", Map.of("input_stream", input, "output_stream", output))) {
            insert = tables.executeSql(statement);
        }
        try {
            List<String> got = FlinkJobs.awaitCount("window rows", expected.size(), () -> FlinkJobs.readAll(kinesis, output));
            Files.write(Path.of("target", "tumble-window-insert.actual.jsonl"), got.stream().sorted().toList());
            assertEquals(expected.stream().sorted().toList(), got.stream().sorted().toList());
        } finally {
            insert.getJobClient().orElseThrow().cancel().join();
        }
    }

    private static TableEnvironment tableEnvironment() {
        TableEnvironment tables = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        tables.getConfig().set("parallelism.default", "1");
        return tables;
    }

    /** The file's statements, comments dropped and ${name} placeholders filled in. */
    private static List<String> statements(String file, Map<String, String> variables) throws IOException {
        String text = Files.readAllLines(SQL.resolve(file)).stream()
                .filter(line -> !line.startsWith("--"))
                .collect(Collectors.joining("\n"))
                .replace("${endpoint}", tideline.endpoint().toString());
        for (Map.Entry<String, String> variable : variables.entrySet()) {
            text = text.replace("${" + variable.getKey() + "}", variable.getValue());
        }
        List<String> statements = new ArrayList<>();
        Arrays.stream(text.split(";\\s*\n")).map(String::strip).filter(s -> !s.isEmpty())
                .map(s -> s.endsWith(";") ? s.substring(0, s.length() - 1) : s)
                .forEach(statements::add);
        return statements;
    }
}
