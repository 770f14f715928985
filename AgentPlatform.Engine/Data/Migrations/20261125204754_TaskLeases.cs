using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AgentPlatform.Engine.Data.Migrations
{
    /// <inheritdoc />
    public partial class TaskLeases : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "LeaseExpiresAt",
                table: "agent_tasks",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<Guid>(
                name: "LeaseOwner",
                table: "agent_tasks",
                type: "uuid",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_agent_tasks_LeaseExpiresAt",
                table: "agent_tasks",
                column: "LeaseExpiresAt",
                filter: "\"Status\" = 'running'");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_agent_tasks_LeaseExpiresAt",
                table: "agent_tasks");

            migrationBuilder.DropColumn(
                name: "LeaseExpiresAt",
                table: "agent_tasks");

            migrationBuilder.DropColumn(
                name: "LeaseOwner",
                table: "agent_tasks");
        }
    }
}
