using System.Globalization;
using System.Text.Json;

namespace Osprey.Detection.Evaluation;

/// <summary>Feeds a <see cref="Utf8JsonReader"/> from a file through a growing window, so files of any size parse in
/// bounded memory, and turns byte offsets back into "file: line L, column C" for error messages.</summary>
internal sealed class CocoJsonStream : IDisposable
{
    private readonly Stream _stream;
    private byte[] _buffer;
    private int _length;
    private long _bufferStart;
    private bool _final;

    public string Path { get; }

    public CocoJsonStream(string path, int bufferSize = 1 << 20)
    {
        Path = path;
        try { _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CocoFormatException($"{path}: cannot open: {e.Message}", e);
        }
        _buffer = new byte[bufferSize];
    }

    public void Dispose() => _stream.Dispose();

    /// <summary>The first reader over the file (a UTF-8 byte-order mark is skipped).</summary>
    public Utf8JsonReader Start()
    {
        Fill();
        int skip = _length >= 3 && _buffer[0] == 0xEF && _buffer[1] == 0xBB && _buffer[2] == 0xBF ? 3 : 0;
        _bufferStart = -skip;
        Buffer.BlockCopy(_buffer, skip, _buffer, 0, _length - skip);
        _length -= skip;
        return new Utf8JsonReader(_buffer.AsSpan(0, _length), _final, default);
    }

    /// <summary>Reads the next token, refilling the window as needed; false only at the end of the file.</summary>
    public bool Read(ref Utf8JsonReader reader)
    {
        while (!reader.Read())
        {
            if (_final) return false;
            Refill(ref reader);
        }
        return true;
    }

    /// <summary>Reads the next token and fails with a "truncated" error at the end of the file.</summary>
    public void ReadRequired(ref Utf8JsonReader reader)
    {
        if (!Read(ref reader)) throw Error(_bufferStart + _length, "file ends early (truncated JSON)");
    }

    /// <summary>Skips the value after a property name (or the current container), refilling as needed.</summary>
    public void Skip(ref Utf8JsonReader reader)
    {
        while (!reader.TrySkip())
        {
            if (_final) throw Error(_bufferStart + _length, "file ends early (truncated JSON)");
            Refill(ref reader);
        }
    }

    /// <summary>Absolute byte offset of the current token.</summary>
    public long Offset(in Utf8JsonReader reader) => _bufferStart + reader.TokenStartIndex;

    private void Refill(ref Utf8JsonReader reader)
    {
        int consumed = (int)reader.BytesConsumed;
        int rest = _length - consumed;
        if (consumed == 0 && _length == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
        Buffer.BlockCopy(_buffer, consumed, _buffer, 0, rest);
        _bufferStart += consumed;
        _length = rest;
        Fill();
        reader = new Utf8JsonReader(_buffer.AsSpan(0, _length), _final, reader.CurrentState);
    }

    private void Fill()
    {
        while (_length < _buffer.Length)
        {
            int n = _stream.Read(_buffer, _length, _buffer.Length - _length);
            if (n == 0) { _final = true; return; }
            _length += n;
        }
    }

    /// <summary>An error at a byte offset: "path: line L, column C: problem" (the file is rescanned, a cold path).</summary>
    public CocoFormatException Error(long offset, string problem) => new($"{Place(offset)}: {problem}");

    public string Place(long offset)
    {
        var (line, column) = LineColumn(offset);
        return string.Create(CultureInfo.InvariantCulture, $"{Path}: line {line}, column {column}");
    }

    private (long Line, long Column) LineColumn(long offset)
    {
        long line = 1, lineStart = 0, pos = 0;
        using var f = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var buf = new byte[1 << 16];
        int n;
        while (pos < offset && (n = f.Read(buf, 0, (int)Math.Min(buf.Length, offset - pos))) > 0)
        {
            for (int i = 0; i < n; i++)
                if (buf[i] == (byte)'\n') { line++; lineStart = pos + i + 1; }
            pos += n;
        }
        return (line, offset - lineStart + 1);
    }

    /// <summary>Wraps a reader exception (malformed or truncated JSON) with the file name and place.</summary>
    public CocoFormatException Wrap(JsonException e) =>
        new(string.Create(CultureInfo.InvariantCulture,
            $"{Path}: line {(e.LineNumber ?? 0) + 1}, column {(e.BytePositionInLine ?? 0) + 1}: malformed JSON: {e.Message}"), e);
}
