using System.Buffers.Binary;
using System.Text;

namespace Osprey.Core.IO;

/// <summary>A Python global (module.name) that the unpickler allowed.</summary>
public sealed record PyGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>The result of calling an allowed global with arguments (REDUCE), left for the caller to interpret.</summary>
public sealed record PyCall(PyGlobal Callable, object?[] Args);

/// <summary>
/// A restricted pickle reader (protocols 2-5, the subset torch.save uses). It builds only plain values:
/// None, bool, int (long), float (double), str, bytes, tuples (object?[]), lists, dicts, plus
/// <see cref="PyGlobal"/>/<see cref="PyCall"/> for the globals named in <c>allowed</c>. Any other global,
/// and every opcode that could run code or touch the outside world, is refused with an exception.
/// Persistent ids (torch's storage references) go to <c>persistentLoad</c>.
/// </summary>
public sealed class Unpickler
{
    private readonly byte[] _data;
    private readonly HashSet<string> _allowed;
    private readonly Func<object?, object?> _persistentLoad;
    private readonly string _source;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private int _pos;

    public Unpickler(byte[] data, IEnumerable<string> allowed, Func<object?, object?> persistentLoad, string source)
    {
        _data = data;
        _allowed = new HashSet<string>(allowed, StringComparer.Ordinal);
        _persistentLoad = persistentLoad;
        _source = source;
    }

    public object? Load()
    {
        while (true)
        {
            int at = _pos;
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: ReadByte(); break;                                   // PROTO
                case 0x95: Take(8); break;                                      // FRAME
                case (byte)'.': return Pop(at);                                  // STOP
                case (byte)'(': _marks.Push(_stack.Count); break;                // MARK
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'K': Push((long)ReadByte()); break;                   // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;
                case 0x8a: Push(ReadLong(ReadByte(), at)); break;                // LONG1
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break;
                case (byte)'X': Push(Encoding.UTF8.GetString(Take(ReadLength32(at)))); break;
                case 0x8c: Push(Encoding.UTF8.GetString(Take(ReadByte()))); break;
                case 0x8d: Push(Encoding.UTF8.GetString(Take(ReadLength64(at)))); break;
                case (byte)'C': Push(Take(ReadByte()).ToArray()); break;          // SHORT_BINBYTES
                case (byte)'B': Push(Take(ReadLength32(at)).ToArray()); break;    // BINBYTES
                case (byte)'}': Push(new OrderedDictionary<object, object?>()); break;
                case (byte)']': Push(new List<object?>()); break;
                case (byte)')': Push(Array.Empty<object?>()); break;
                case (byte)'t': Push(PopMark(at).ToArray()); break;
                case 0x85: Push(new[] { Pop(at) }); break;
                case 0x86: { var b = Pop(at); var a = Pop(at); Push(new[] { a, b }); break; }
                case 0x87: { var c = Pop(at); var b = Pop(at); var a = Pop(at); Push(new[] { a, b, c }); break; }
                case (byte)'q': _memo[ReadByte()] = Peek(at); break;             // BINPUT
                case (byte)'r': _memo[ReadLength32(at)] = Peek(at); break;       // LONG_BINPUT
                case 0x94: _memo[_memo.Count] = Peek(at); break;                 // MEMOIZE
                case (byte)'h': Push(Memo(ReadByte(), at)); break;               // BINGET
                case (byte)'j': Push(Memo(ReadLength32(at), at)); break;         // LONG_BINGET
                case (byte)'a': { var v = Pop(at); AsList(Peek(at), at).Add(v); break; }
                case (byte)'e': { var items = PopMark(at); AsList(Peek(at), at).AddRange(items); break; }
                case (byte)'s': { var v = Pop(at); var k = Pop(at); SetItem(Peek(at), k, v, at); break; }
                case (byte)'u':
                    {
                        var items = PopMark(at);
                        if (items.Count % 2 != 0) throw Bad(at, "SETITEMS with an odd number of items");
                        var d = Peek(at);
                        for (int i = 0; i < items.Count; i += 2) SetItem(d, items[i], items[i + 1], at);
                        break;
                    }
                case (byte)'c': Push(Global(ReadLine(at), ReadLine(at), at)); break;
                case 0x93: { var name = Pop(at) as string; var module = Pop(at) as string; Push(Global(module ?? "", name ?? "", at)); break; }
                case (byte)'R':
                    {
                        var args = Pop(at) as object?[] ?? throw Bad(at, "REDUCE arguments are not a tuple");
                        var f = Pop(at) as PyGlobal ?? throw Bad(at, "REDUCE of something that is not an allowed global");
                        Push(Call(f, args));
                        break;
                    }
                case 0x81:                                                       // NEWOBJ
                    {
                        var args = Pop(at) as object?[] ?? throw Bad(at, "NEWOBJ arguments are not a tuple");
                        var cls = Pop(at) as PyGlobal ?? throw Bad(at, "NEWOBJ of something that is not an allowed global");
                        Push(Call(cls, args));
                        break;
                    }
                case (byte)'b':                                                  // BUILD: object state; kept only for plain dicts
                    Pop(at);
                    break;
                case (byte)'Q': Push(_persistentLoad(Pop(at))); break;          // BINPERSID
                default:
                    throw Bad(at, $"opcode 0x{op:x2} ('{(char)op}') is not allowed");
            }
        }
    }

    private static object? Call(PyGlobal f, object?[] args) =>
        f is { Module: "collections", Name: "OrderedDict" } ? new OrderedDictionary<object, object?>() : new PyCall(f, args);

    private PyGlobal Global(string module, string name, int at)
    {
        string full = $"{module}.{name}";
        if (!_allowed.Contains(full)) throw Bad(at, $"global '{full}' is not allowed (only tensors and plain containers are read)");
        return new PyGlobal(module, name);
    }

    private static void SetItem(object? d, object? key, object? value, int at)
    {
        if (d is not OrderedDictionary<object, object?> dict) throw new WeightFileException($"pickle offset {at}: SETITEM on a non-dict");
        dict[key ?? "None"] = value;
    }

    private static List<object?> AsList(object? o, int at) =>
        o as List<object?> ?? throw new WeightFileException($"pickle offset {at}: APPEND to a non-list");

    private object? Memo(long key, int at) => _memo.TryGetValue(key, out var v) ? v : throw Bad(at, $"memo key {key} was never stored");

    private void Push(object? o) => _stack.Add(o);

    private object? Pop(int at)
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _stack.Count <= _marks.Peek())) throw Bad(at, "stack underflow");
        var o = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return o;
    }

    private object? Peek(int at) => _stack.Count > 0 ? _stack[^1] : throw Bad(at, "stack underflow");

    private List<object?> PopMark(int at)
    {
        if (_marks.Count == 0) throw Bad(at, "no MARK on the stack");
        int m = _marks.Pop();
        var items = _stack.GetRange(m, _stack.Count - m);
        _stack.RemoveRange(m, _stack.Count - m);
        return items;
    }

    private byte ReadByte() => Take(1)[0];

    private ReadOnlySpan<byte> Take(long n)
    {
        if (n < 0 || _pos + n > _data.Length) throw Bad(_pos, $"truncated: needs {n} more bytes, {_data.Length - _pos} left");
        var s = _data.AsSpan(_pos, (int)n);
        _pos += (int)n;
        return s;
    }

    private long ReadLength32(int at)
    {
        uint n = BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        return n <= int.MaxValue ? n : throw Bad(at, $"length {n} too large");
    }

    private long ReadLength64(int at)
    {
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        return n <= int.MaxValue ? (long)n : throw Bad(at, $"length {n} too large");
    }

    private long ReadLong(int n, int at)
    {
        if (n > 8) throw Bad(at, $"integer of {n} bytes is too large");
        var b = Take(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
        if (n > 0 && n < 8 && (b[n - 1] & 0x80) != 0) v -= 1L << (8 * n);
        return v;
    }

    private string ReadLine(int at)
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Bad(at, "unterminated GLOBAL name");
        string s = Encoding.ASCII.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return s;
    }

    private WeightFileException Bad(int at, string problem) => new($"{_source}: pickle offset {at}: {problem}");
}
