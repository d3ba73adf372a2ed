Console.WriteLine("see osprey bench");
