# Rollup retention: each organization's days of daily rollups, and of any rollups at all.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("reports", "0030_raw_blobs")]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="rollup_daily_days",
            field=models.PositiveIntegerField(
                default=400,
                help_text="days the rollups of sources and DKIM signatures keep each day; older whole months are "
                "compacted to one row per month (totals unchanged); 0 keeps every day forever",
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="rollup_monthly_days",
            field=models.PositiveIntegerField(
                default=0,
                help_text="days any rollup is kept (daily totals and the monthly rows); older whole months are "
                "removed from the dashboard; 0 keeps them forever",
            ),
        ),
    ]
