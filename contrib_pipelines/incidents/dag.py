"""The incidents pipeline as an Airflow DAG: copy or link this file into your dags folder."""

from drivetrain.airflow import build_dag

dag = build_dag("incidents")
