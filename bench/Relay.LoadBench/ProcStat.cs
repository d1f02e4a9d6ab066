using System.Globalization;

namespace Relay.LoadBench;

/// <summary>CPU time and resident memory of a process and its descendants, from <c>/proc</c> (Linux only).</summary>
internal static class ProcStat
{
    // USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every Linux architecture .NET runs on.
    private const double TicksPerSecond = 100;

    /// <summary>A snapshot of a process tree.</summary>
    public readonly record struct Sample(double CpuSeconds, long RssBytes);

    /// <summary>The process and every descendant (nginx workers, for example), found by parent id.</summary>
    public static int[] Tree(int pid)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var id) && TryReadFields(id, out var fields))
            {
                parents[id] = int.Parse(fields[1], CultureInfo.InvariantCulture);
            }
        }

        var tree = new List<int> { pid };
        for (var i = 0; i < tree.Count; i++)
        {
            foreach (var (child, parent) in parents)
            {
                if (parent == tree[i])
                {
                    tree.Add(child);
                }
            }
        }

        return [.. tree];
    }

    public static Sample Read(IReadOnlyList<int> pids)
    {
        double cpu = 0;
        long rss = 0;
        foreach (var pid in pids)
        {
            if (TryReadFields(pid, out var f))
            {
                // Fields after the command: [0] state, [1] ppid, ... [11] utime, [12] stime, ... [21] rss (pages).
                cpu += (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
                rss += long.Parse(f[21], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
            }
        }

        return new Sample(cpu, rss);
    }

    /// <summary>CPU time of this process's children that have exited and been waited for (cutime + cstime).</summary>
    public static double ReapedChildrenCpuSeconds()
    {
        if (!TryReadFields(Environment.ProcessId, out var f))
        {
            return double.NaN;
        }

        // [13] cutime, [14] cstime.
        return (long.Parse(f[13], CultureInfo.InvariantCulture) + long.Parse(f[14], CultureInfo.InvariantCulture)) / TicksPerSecond;
    }

    private static bool TryReadFields(int pid, out string[] fields)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name is in parentheses and may contain spaces: split after the last ')'.
            fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return true;
        }
        catch (IOException)
        {
            fields = [];
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            fields = [];
            return false;
        }
    }
}
