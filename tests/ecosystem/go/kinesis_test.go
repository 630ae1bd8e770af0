// The AWS SDK for Go v2 against the real tideline binary ($TIDELINE_BIN): create a stream, put,
// get, list shards and SubscribeToShard, over plain HTTP and over the TLS listener (where Go's
// client negotiates HTTP/2 by ALPN).
package ecosystem

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

const listeningPrefix = "tideline listening on "

// startTideline runs `tideline serve --in-memory` on a free port plus extraArgs, and returns the
// endpoint it printed. The server is killed when the test ends.
func startTideline(t *testing.T, extraArgs ...string) string {
	t.Helper()
	bin := os.Getenv("TIDELINE_BIN")
	if bin == "" {
		t.Fatal("TIDELINE_BIN must name the tideline binary")
	}
	args := append([]string{"serve", "--in-memory", "--listen", "127.0.0.1:0"}, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TIDELINE_LOG=warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	endpoint := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if url, ok := strings.CutPrefix(lines.Text(), listeningPrefix); ok {
				endpoint <- url
			}
		}
	}()
	select {
	case url := <-endpoint:
		return url
	case <-time.After(10 * time.Second):
		t.Fatal("tideline did not print its listening line within 10 s")
		return ""
	}
}

// newClient is a Kinesis client for endpoint; over https it trusts any certificate (the server's is
// self-signed) and lets Go's transport negotiate HTTP/2.
func newClient(endpoint string) *kinesis.Client {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(transport *http.Transport) {
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		// A custom TLS config turns Go's automatic HTTP/2 off unless asked for again.
		transport.ForceAttemptHTTP2 = true
	})
	return kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTIDELINE", "tideline-secret", ""),
		HTTPClient:   httpClient,
	})
}

func createStream(ctx context.Context, t *testing.T, client *kinesis.Client, name string, shards int32) string {
	t.Helper()
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	waiter := kinesis.NewStreamExistsWaiter(client)
	if err := waiter.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 30*time.Second); err != nil {
		t.Fatalf("waiting for ACTIVE: %v", err)
	}
	summary, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("DescribeStreamSummary: %v", err)
	}
	return aws.ToString(summary.StreamDescriptionSummary.StreamARN)
}

// putRecords writes n records, keys "key-0".."key-{keys-1}" in turn, with PutRecord and
// PutRecords; returns the data written per shard, in order.
func putRecords(ctx context.Context, t *testing.T, client *kinesis.Client, name string, n int) map[string][]string {
	t.Helper()
	written := map[string][]string{}
	for i := 0; i < n/2; i++ {
		data := fmt.Sprintf("single-%d", i)
		out, err := client.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(name), PartitionKey: aws.String(fmt.Sprintf("key-%d", i%7)), Data: []byte(data),
		})
		if err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
		written[aws.ToString(out.ShardId)] = append(written[aws.ToString(out.ShardId)], data)
	}
	var entries []types.PutRecordsRequestEntry
	for i := n / 2; i < n; i++ {
		entries = append(entries, types.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("key-%d", i%7)), Data: []byte(fmt.Sprintf("batch-%d", i)),
		})
	}
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %d records failed", aws.ToInt32(out.FailedRecordCount))
	}
	for i, result := range out.Records {
		written[aws.ToString(result.ShardId)] = append(written[aws.ToString(result.ShardId)], string(entries[i].Data))
	}
	return written
}

func listShardIDs(ctx context.Context, t *testing.T, client *kinesis.Client, name string) []string {
	t.Helper()
	var ids []string
	input := &kinesis.ListShardsInput{StreamName: aws.String(name), MaxResults: aws.Int32(1)}
	for {
		out, err := client.ListShards(ctx, input)
		if err != nil {
			t.Fatalf("ListShards: %v", err)
		}
		for _, shard := range out.Shards {
			ids = append(ids, aws.ToString(shard.ShardId))
		}
		if out.NextToken == nil {
			sort.Strings(ids)
			return ids
		}
		input = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: aws.Int32(1)}
	}
}

// readShard reads a shard from TRIM_HORIZON with GetShardIterator and GetRecords until an empty
// page at the tip.
func readShard(ctx context.Context, t *testing.T, client *kinesis.Client, name, shardID string) []string {
	t.Helper()
	iterator, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(name), ShardId: aws.String(shardID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	var data []string
	next := iterator.ShardIterator
	for page := 0; page < 100 && next != nil; page++ {
		out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next, Limit: aws.Int32(7)})
		if err != nil {
			t.Fatalf("GetRecords: %v", err)
		}
		for _, record := range out.Records {
			data = append(data, string(record.Data))
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			break
		}
		next = out.NextShardIterator
	}
	return data
}

// subscribe reads a shard through a registered consumer from TRIM_HORIZON until want records
// arrived; it fails unless the response came over wantProto.
func subscribe(ctx context.Context, t *testing.T, client *kinesis.Client, consumerARN, shardID string, want int, wantProto string) []string {
	t.Helper()
	out, err := client.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String(consumerARN), ShardId: aws.String(shardID),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon},
	})
	if err != nil {
		t.Fatalf("SubscribeToShard: %v", err)
	}
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); !ok || raw.Proto != wantProto {
		t.Fatalf("SubscribeToShard: want a response over %s, got %+v", wantProto, raw)
	}
	stream := out.GetStream()
	defer stream.Close()
	var data []string
	for len(data) < want {
		select {
		case event, ok := <-stream.Events():
			if !ok {
				t.Fatalf("event stream ended after %d of %d records: %v", len(data), want, stream.Err())
			}
			if records, isRecords := event.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); isRecords {
				for _, record := range records.Value.Records {
					data = append(data, string(record.Data))
				}
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d records within the deadline", len(data), want)
		}
	}
	return data
}

func registerConsumer(ctx context.Context, t *testing.T, client *kinesis.Client, streamARN string) string {
	t.Helper()
	out, err := client.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(streamARN), ConsumerName: aws.String("go-consumer"),
	})
	if err != nil {
		t.Fatalf("RegisterStreamConsumer: %v", err)
	}
	arn := aws.ToString(out.Consumer.ConsumerARN)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		described, err := client.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
		if err != nil {
			t.Fatalf("DescribeStreamConsumer: %v", err)
		}
		if described.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			return arn
		}
	}
	t.Fatal("consumer not ACTIVE within 10 s")
	return ""
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// roundTrip runs the whole flow against one endpoint; SubscribeToShard's response must come over
// subscribeProto.
func roundTrip(t *testing.T, endpoint, subscribeProto string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := newClient(endpoint)
	name := "go-sdk"
	streamARN := createStream(ctx, t, client, name, 2)
	written := putRecords(ctx, t, client, name, 40)

	shards := listShardIDs(ctx, t, client, name)
	if !equal(shards, []string{"shardId-000000000000", "shardId-000000000001"}) {
		t.Fatalf("ListShards: %v", shards)
	}
	for _, shard := range shards {
		if got := readShard(ctx, t, client, name, shard); !equal(got, written[shard]) {
			t.Errorf("GetRecords %s: got %v, want %v", shard, got, written[shard])
		}
	}

	consumerARN := registerConsumer(ctx, t, client, streamARN)
	for _, shard := range shards {
		if got := subscribe(ctx, t, client, consumerARN, shard, len(written[shard]), subscribeProto); !equal(got, written[shard]) {
			t.Errorf("SubscribeToShard %s: got %v, want %v", shard, got, written[shard])
		}
	}

	var notFound *types.ResourceNotFoundException
	_, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("no-such-stream")})
	if !errors.As(err, &notFound) {
		t.Errorf("DescribeStreamSummary of a missing stream: want ResourceNotFoundException, got %v", err)
	}
}

func TestRoundTripOverHTTP(t *testing.T) {
	endpoint := startTideline(t)
	if !strings.HasPrefix(endpoint, "http://") {
		t.Fatalf("endpoint %q", endpoint)
	}
	// Go's transport speaks HTTP/1.1 to an http:// endpoint (no h2c); tideline streams the
	// event stream over it all the same.
	roundTrip(t, endpoint, "HTTP/1.1")
}

func TestRoundTripOverTLS(t *testing.T) {
	endpoint := startTideline(t, "--tls-self-signed")
	if !strings.HasPrefix(endpoint, "https://") {
		t.Fatalf("endpoint %q", endpoint)
	}
	roundTrip(t, endpoint, "HTTP/2.0")
}
