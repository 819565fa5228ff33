"""Seeding: the virtualenv seeder plugin and one seeding's run."""
