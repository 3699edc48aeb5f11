from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.config import settings

engine = create_async_engine(str(settings.SQLALCHEMY_DATABASE_URI), pool_pre_ping=True)
AsyncSessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_sessionmaker() -> AsyncIterator[async_sessionmaker]:
    yield AsyncSessionLocal


SessionMaker = Annotated[async_sessionmaker, Depends(get_sessionmaker)]
