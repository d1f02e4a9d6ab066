using System.Buffers;

namespace Relay.Middleware.ServerSentEvents;

/// <summary>
/// A growable byte buffer over an <see cref="ArrayPool{T}"/> array: the pipeline's scratch and pending
/// buffers reuse it so that steady-state streaming allocates nothing per event.
/// </summary>
/// <remarks>
/// The array is rented on the first write and goes back to the pool whenever the buffer becomes empty, so a stream
/// holds pooled memory only for the bytes in hand. Held for a stream's lifetime instead, the arrays of hundreds of
/// concurrent streams outnumber what the shared pool keeps: each stream's rent then allocated a new array, and each
/// return dropped one (about 6 KiB of garbage per request, and as much held per idle stream).
/// </remarks>
internal sealed class PooledByteBuffer : IBufferWriter<byte>, IDisposable
{
    private readonly int _initialCapacity;
    private byte[] _array = [];
    private int _length;

    public PooledByteBuffer(int initialCapacity = 256) => _initialCapacity = initialCapacity;

    public int Length => _length;

    /// <summary>The size of the pooled array held now (0 while empty).</summary>
    internal int PooledBytes => _array.Length;

    public ReadOnlySpan<byte> WrittenSpan => _array.AsSpan(0, _length);

    public void Clear()
    {
        _length = 0;
        Release();
    }

    public void Append(byte value)
    {
        EnsureCapacity(1);
        _array[_length++] = value;
    }

    public void Append(ReadOnlySpan<byte> bytes)
    {
        EnsureCapacity(bytes.Length);
        bytes.CopyTo(_array.AsSpan(_length));
        _length += bytes.Length;
    }

    public void Truncate(int length) => _length = length;

    /// <summary>Drops the first <paramref name="count"/> bytes, shifting the rest down (no new array).</summary>
    public void RemovePrefix(int count)
    {
        if (count >= _length)
        {
            Clear();
            return;
        }

        Buffer.BlockCopy(_array, count, _array, 0, _length - count);
        _length -= count;
    }

    public void Advance(int count) => _length += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        EnsureCapacity(Math.Max(sizeHint, 16));
        return _array.AsMemory(_length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        EnsureCapacity(Math.Max(sizeHint, 16));
        return _array.AsSpan(_length);
    }

    private void EnsureCapacity(int extra)
    {
        if (_length + extra <= _array.Length)
        {
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(Math.Max(_array.Length * 2, _length + extra), _initialCapacity));
        Buffer.BlockCopy(_array, 0, bigger, 0, _length);
        Release();
        _array = bigger;
    }

    private void Release()
    {
        if (_array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_array);
            _array = [];
        }
    }

    public void Dispose()
    {
        _length = 0;
        Release();
    }
}
