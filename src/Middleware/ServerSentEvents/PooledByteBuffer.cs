using System.Buffers;

namespace Relay.Middleware.ServerSentEvents;

/// <summary>
/// A growable byte buffer over an <see cref="ArrayPool{T}"/> array: the pipeline's scratch and pending
/// buffers reuse it so that steady-state streaming allocates nothing per event.
/// </summary>
internal sealed class PooledByteBuffer : IBufferWriter<byte>, IDisposable
{
    private byte[] _array;
    private int _length;

    public PooledByteBuffer(int initialCapacity = 256) => _array = ArrayPool<byte>.Shared.Rent(initialCapacity);

    public int Length => _length;

    public ReadOnlySpan<byte> WrittenSpan => _array.AsSpan(0, _length);

    public void Clear() => _length = 0;

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
            _length = 0;
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

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(_array.Length * 2, _length + extra));
        Buffer.BlockCopy(_array, 0, bigger, 0, _length);
        ArrayPool<byte>.Shared.Return(_array);
        _array = bigger;
    }

    public void Dispose()
    {
        if (_array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_array);
            _array = [];
            _length = 0;
        }
    }
}
