using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AgentPlatform.Engine.Data.Migrations
{
    /// <inheritdoc />
    public partial class KeyAlertWebhook : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "AlertWebhookUrl",
                table: "api_keys",
                type: "character varying(2000)",
                maxLength: 2000,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "AlertWebhookUrl",
                table: "api_keys");
        }
    }
}
