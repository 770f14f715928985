using System.Globalization;

namespace AgentPlatform.Engine.Tools;

/// <summary>
/// Evaluates arithmetic: + - * / % ^ (power, right-associative), unary minus, parentheses, decimals.
/// A small recursive-descent parser over <see cref="decimal"/> (so 0.1 + 0.2 is 0.3): model-supplied
/// text is never compiled or evaluated as code.
/// </summary>
public static class Calculator
{
    public const int MaxLength = 1000;
    private const int MaxNesting = 64;

    /// <exception cref="ToolFailedException">The expression is malformed, divides by zero or overflows.</exception>
    public static decimal Evaluate(string expression)
    {
        if (string.IsNullOrWhiteSpace(expression)) throw new ToolFailedException("The expression is empty.");
        if (expression.Length > MaxLength) throw new ToolFailedException($"The expression is longer than {MaxLength} characters.");
        try
        {
            var parser = new Parser(expression);
            var value = parser.ParseAll();
            // Drops trailing zeros of the scale (14.0 → 14) without losing digits.
            return value / 1.000000000000000000000000000000000m;
        }
        catch (OverflowException)
        {
            throw new ToolFailedException("The result is too large.");
        }
        catch (DivideByZeroException)
        {
            throw new ToolFailedException("Division by zero.");
        }
    }

    private sealed class Parser(string text)
    {
        private int _position;
        private int _depth;

        public decimal ParseAll()
        {
            var value = ParseSum();
            SkipSpaces();
            if (_position < text.Length) throw Error($"Unexpected '{text[_position]}' at position {_position + 1}.");
            return value;
        }

        // sum := product (('+' | '-') product)*
        private decimal ParseSum()
        {
            var value = ParseProduct();
            while (Accept('+', '-') is { } op)
            {
                var right = ParseProduct();
                value = op == '+' ? value + right : value - right;
            }
            return value;
        }

        // product := unary (('*' | '/' | '%') unary)*
        private decimal ParseProduct()
        {
            var value = ParseUnary();
            while (Accept('*', '/', '%') is { } op)
            {
                var right = ParseUnary();
                value = op switch
                {
                    '*' => value * right,
                    '/' => value / right,
                    _ => value % right,
                };
            }
            return value;
        }

        // unary := ('-' | '+') unary | power   — so -2^2 is -(2^2), as in mathematics.
        private decimal ParseUnary()
        {
            if (Accept('-', '+') is { } sign)
            {
                using var _ = Nest();
                var operand = ParseUnary();
                return sign == '-' ? -operand : operand;
            }
            return ParsePower();
        }

        // power := primary ('^' unary)?   — right-associative: 2^3^2 is 2^9.
        private decimal ParsePower()
        {
            var value = ParsePrimary();
            if (Accept('^') is null) return value;
            using var _ = Nest();
            return Power(value, ParseUnary());
        }

        // primary := number | '(' sum ')'
        private decimal ParsePrimary()
        {
            SkipSpaces();
            if (_position >= text.Length) throw Error("The expression ends where a number or '(' was expected.");
            if (Accept('(') is not null)
            {
                using var _ = Nest();
                var value = ParseSum();
                if (Accept(')') is null) throw Error($"Missing ')' at position {_position + 1}.");
                return value;
            }
            return ParseNumber();
        }

        private decimal ParseNumber()
        {
            var start = _position;
            while (_position < text.Length && (char.IsAsciiDigit(text[_position]) || text[_position] == '.')) _position++;
            if (start == _position) throw Error($"Unexpected '{text[start]}' at position {start + 1}; expected a number.");
            var literal = text[start.._position];
            if (!decimal.TryParse(literal, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
                throw Error($"'{literal}' at position {start + 1} is not a number.");
            return value;
        }

        private static decimal Power(decimal x, decimal exponent)
        {
            if (exponent == decimal.Truncate(exponent) && Math.Abs(exponent) <= 10_000)
            {
                // Exact for whole exponents (square-and-multiply); decimal throws OverflowException when too large.
                var result = 1m;
                var factor = x;
                for (var n = (long)Math.Abs(exponent); n > 0; n >>= 1)
                {
                    if ((n & 1) == 1) result *= factor;
                    if (n > 1) factor *= factor;
                }
                return exponent < 0 ? 1m / result : result;
            }
            var power = Math.Pow((double)x, (double)exponent);
            if (double.IsNaN(power)) throw Error("The power is not a real number (a negative base with a fractional exponent).");
            if (double.IsInfinity(power) || Math.Abs(power) > (double)decimal.MaxValue) throw new OverflowException();
            return (decimal)power;
        }

        private char? Accept(params ReadOnlySpan<char> operators)
        {
            SkipSpaces();
            if (_position < text.Length && operators.Contains(text[_position])) return text[_position++];
            return null;
        }

        private void SkipSpaces()
        {
            while (_position < text.Length && char.IsWhiteSpace(text[_position])) _position++;
        }

        private NestingScope Nest()
        {
            if (++_depth > MaxNesting) throw Error($"The expression nests deeper than {MaxNesting} levels.");
            return new NestingScope(this);
        }

        private readonly struct NestingScope(Parser parser) : IDisposable
        {
            public void Dispose() => parser._depth--;
        }

        private static ToolFailedException Error(string message) => new(message);
    }
}
