using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AgentPlatform.Engine.Data.Migrations
{
    /// <inheritdoc />
    public partial class KeyLimits : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "RpmLimit",
                table: "api_keys",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "TpmLimit",
                table: "api_keys",
                type: "integer",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "RpmLimit",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "TpmLimit",
                table: "api_keys");
        }
    }
}
