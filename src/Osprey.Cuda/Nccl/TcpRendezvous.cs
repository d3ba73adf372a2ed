using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Osprey.Core;

namespace Osprey.Cuda.Nccl;

/// <summary>The rendezvous failed: a peer never came, spoke another protocol, or disagreed on the world.</summary>
public sealed class RendezvousException : OspreyException
{
    public RendezvousException() { }
    public RendezvousException(string message) : base(message) { }
    public RendezvousException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// Multi-node start-up for NCCL: node 0 creates the ncclUniqueId and hands it to every other node over TCP, as torch's
/// TCPStore does for its process groups. Node 0 listens on the master address (<c>--master host:port</c>); each other node
/// connects (retrying until the timeout, since node 0 may start later), sends a hello (magic, protocol version, node count,
/// its node rank, its GPU count, the iteration it starts at) and receives node 0's verdict and the id. Node 0 answers only once every node has said
/// hello, checks that they agree on the node count, GPU count and starting iteration (a node that
/// found no checkpoint while node 0 resumed from one is refused) and that no node rank is missing or repeated, and sends
/// each either the id or the reason it refuses. After that every process calls ncclCommInitRank with the id; NCCL then
/// connects the ranks itself (sockets or InfiniBand; NCCL_SOCKET_IFNAME picks the interface).
/// The payload is opaque bytes, so the exchange is tested on localhost without a GPU.
/// </summary>
public static class TcpRendezvous
{
    private const ulong Magic = 0x4F5350524559_4E43;   // "OSPREYNC"
    private const int Protocol = 1;
    private const int HelloBytes = 8 + 4 * 4 + 8;

    /// <summary>Node 0: listens on <paramref name="endpoint"/>, waits for the other <paramref name="nodes"/> - 1 nodes and sends
    /// each <paramref name="payload"/> (the unique id). Throws <see cref="RendezvousException"/> naming the missing or
    /// disagreeing nodes.</summary>
    public static void Serve(IPEndPoint endpoint, int nodes, int gpusPerNode, long iteration, ReadOnlySpan<byte> payload, TimeSpan timeout, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (nodes < 2) throw new ArgumentOutOfRangeException(nameof(nodes), $"rendezvous: {nodes} nodes; a rendezvous needs at least 2");
        byte[] data = payload.ToArray();
        using var listener = new TcpListener(endpoint);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try { listener.Start(nodes); }
        catch (SocketException e) { throw new RendezvousException($"rendezvous: node 0 cannot listen on {endpoint}: {e.Message}", e); }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        cts.CancelAfter(timeout);
        var peers = new List<(TcpClient Client, int Node, string? Problem)>();
        try
        {
            var seen = new HashSet<int>();
            while (seen.Count < nodes - 1)
            {
                TcpClient client;
                try { client = listener.AcceptTcpClientAsync(cts.Token).AsTask().GetAwaiter().GetResult(); }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    var missing = Enumerable.Range(1, nodes - 1).Where(n => !seen.Contains(n));
                    throw new RendezvousException($"rendezvous: after {timeout.TotalSeconds:F0} s on {endpoint}, node(s) {string.Join(", ", missing)} of {nodes} never connected");
                }
                var stream = client.GetStream();
                stream.ReadTimeout = (int)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);
                var hello = new byte[HelloBytes];
                string? problem = null;
                int node = -1;
                try
                {
                    stream.ReadExactly(hello);
                    ulong magic = BinaryPrimitives.ReadUInt64LittleEndian(hello);
                    int protocol = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(8));
                    int theirNodes = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(12));
                    node = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(16));
                    int theirGpus = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(20));
                    long theirIteration = BinaryPrimitives.ReadInt64LittleEndian(hello.AsSpan(24));
                    if (magic != Magic || protocol != Protocol) problem = $"a peer at {client.Client.RemoteEndPoint} does not speak Osprey's rendezvous protocol {Protocol}";
                    else if (theirNodes != nodes) problem = $"node {node} was started with --nodes {theirNodes}, node 0 with --nodes {nodes}";
                    else if (node < 1 || node >= nodes) problem = $"a node says it is --node-rank {node}, outside 1..{nodes - 1}";
                    else if (!seen.Add(node)) problem = $"two nodes say they are --node-rank {node}";
                    else if (theirGpus != gpusPerNode) problem = $"node {node} has {theirGpus} GPU(s) in --devices, node 0 has {gpusPerNode}: every node must use the same number";
                    else if (theirIteration != iteration) problem = $"node {node} starts at iteration {theirIteration}, node 0 at {iteration}: every node must resume from the same checkpoint";
                }
                catch (Exception e) when (e is IOException or EndOfStreamException or SocketException)
                {
                    problem = $"a peer at {client.Client.RemoteEndPoint} hung up during the hello: {e.Message}";
                }
                peers.Add((client, node, problem));
                if (problem is not null) break;
            }
            string? refusal = peers.Select(p => p.Problem).FirstOrDefault(p => p is not null);
            foreach (var (client, _, _) in peers)
            {
                try { Reply(client.GetStream(), refusal, data); }
                catch (IOException) { }   // the refusal is reported here; a peer that left learns nothing more
            }
            if (refusal is not null) throw new RendezvousException($"rendezvous refused: {refusal}");
        }
        finally
        {
            foreach (var (client, _, _) in peers) client.Dispose();
            listener.Stop();
        }
    }

    /// <summary>Node <paramref name="nodeRank"/> (1..nodes-1): connects to node 0 at <paramref name="master"/> (retrying until
    /// <paramref name="timeout"/>), says hello and returns node 0's payload.</summary>
    public static byte[] Join(DnsEndPoint master, int nodes, int nodeRank, int gpusPerNode, long iteration, TimeSpan timeout, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(master);
        if (nodeRank < 1 || nodeRank >= nodes) throw new ArgumentOutOfRangeException(nameof(nodeRank), $"rendezvous: node rank {nodeRank} of {nodes} nodes (node 0 serves)");
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            try
            {
                using var client = new TcpClient();
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                cts.CancelAfter(TimeSpan.FromSeconds(2));
                client.ConnectAsync(master.Host, master.Port, cts.Token).AsTask().GetAwaiter().GetResult();
                var stream = client.GetStream();
                stream.ReadTimeout = (int)Math.Clamp((deadline - DateTime.UtcNow).TotalMilliseconds + 5000, 1000, int.MaxValue);
                var hello = new byte[HelloBytes];
                BinaryPrimitives.WriteUInt64LittleEndian(hello, Magic);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), Protocol);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), nodes);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(16), nodeRank);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(20), gpusPerNode);
                BinaryPrimitives.WriteInt64LittleEndian(hello.AsSpan(24), iteration);
                stream.Write(hello);
                return ReadReply(stream, master);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !cancel.IsCancellationRequested)
            {
                last = e;   // node 0 not listening yet
            }
            if (DateTime.UtcNow >= deadline)
                throw new RendezvousException($"rendezvous: node {nodeRank} could not reach node 0 at {master.Host}:{master.Port} within {timeout.TotalSeconds:F0} s: {last?.Message}", last!);
            Thread.Sleep(200);
        }
    }

    private static void Reply(NetworkStream stream, string? refusal, byte[] payload)
    {
        byte[] body = refusal is null ? payload : System.Text.Encoding.UTF8.GetBytes(refusal);
        var head = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(head, refusal is null ? 0 : 1);
        BinaryPrimitives.WriteInt32LittleEndian(head.AsSpan(4), body.Length);
        stream.Write(head);
        stream.Write(body);
        stream.Flush();
    }

    private static byte[] ReadReply(NetworkStream stream, DnsEndPoint master)
    {
        var head = new byte[8];
        try { stream.ReadExactly(head); }
        catch (EndOfStreamException e) { throw new RendezvousException($"rendezvous: node 0 at {master.Host}:{master.Port} closed the connection without an answer", e); }
        int status = BinaryPrimitives.ReadInt32LittleEndian(head);
        int length = BinaryPrimitives.ReadInt32LittleEndian(head.AsSpan(4));
        if (length is < 0 or > 1 << 16) throw new RendezvousException($"rendezvous: node 0 sent a reply of {length} bytes");
        var body = new byte[length];
        stream.ReadExactly(body);
        if (status != 0) throw new RendezvousException($"rendezvous refused by node 0: {System.Text.Encoding.UTF8.GetString(body)}");
        return body;
    }

    /// <summary>Parses <c>host:port</c> (host may be a name, an IPv4 address or [IPv6]).</summary>
    public static DnsEndPoint ParseMaster(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw new ArgumentException($"--master {text}: expected host:port (port 1..65535)");
        string host = text[..colon].Trim('[', ']');
        if (host.Length == 0) throw new ArgumentException($"--master {text}: no host");
        return new DnsEndPoint(host, port);
    }
}
